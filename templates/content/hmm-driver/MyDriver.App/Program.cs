using MyDriver;
using Hmm.Runtime;
using Hmm.Runtime.Devices;
using Hmm.Runtime.Memory;
using Hmm.Runtime.Mm;

// Runs GpuDriver on a simulated machine: a process writes a buffer, GPU threads read it through
// the mirrored page table (every first touch is a replayable device fault), GPU writes migrate
// pages to device memory, the CPU reads them back (migrate_to_ram), and madvise(DONTNEED)
// invalidates the device's mapping. Exit code 0 when every value read matched what was written.
const int Pages = 64;
const ulong P = Page.Size;
int mismatches = 0;

using var machine = new Machine(new MachineOptions { SystemMemory = 256L << 20 });
Process process = machine.CreateProcess("app");

// A 2 MiB-aligned anonymous buffer (migration works on 2 MiB-aligned pieces), base pages only.
ulong map = process.Mmap((Pages * P) + Page.PmdSize, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous);
ulong buf = (map + Page.PmdSize - 1) & ~(Page.PmdSize - 1);
process.Madvise(buf, Pages * P, Advice.NoHugePage);
for (int i = 0; i < Pages; i++) process.Store(buf + ((ulong)i * P), 0x1000UL + (ulong)i);

var device = new SimDevice(machine, "gpu0", new SimDeviceOptions { FaultBufferEntries = 1024 });
var driver = new GpuDriver();
Errno attached = driver.Attach(device, process);
if (attached != Errno.Ok)
{
    Console.Error.WriteLine($"attach failed: {attached}");
    return 1;
}

// 1. One GPU thread per page reads the first half: each miss is a fault the driver services (map in place), then replays.
var reads = new DeviceOp[Pages / 2];
for (int i = 0; i < reads.Length; i++) reads[i] = new DeviceOp(buf + ((ulong)i * P), DeviceAccess.Read);
device.Executor.LaunchOnePerThread(driver.Instance, client: 1, reads);
driver.RunToCompletion();
for (int t = 0; t < reads.Length; t++)
    if (device.Executor.ResultOf(t) != 0x1000UL + (ulong)t) mismatches++;

// 2. GPU threads write the second half: the fault policy migrates those pages to device memory.
var writes = new DeviceOp[Pages / 2];
for (int i = 0; i < writes.Length; i++)
    writes[i] = new DeviceOp(buf + ((ulong)(i + (Pages / 2)) * P) + 8, DeviceAccess.Write, 0x2000UL + (ulong)i);
device.Executor.LaunchOnePerThread(driver.Instance, client: 1, writes);
driver.RunToCompletion();

// 3. The CPU reads what the GPU wrote: a touch of a device-private page migrates it back to RAM.
for (int i = 0; i < writes.Length; i++)
    if (process.Load<ulong>(buf + ((ulong)(i + (Pages / 2)) * P) + 8) != 0x2000UL + (ulong)i) mismatches++;

// 4. The CPU overwrites page 0 in place: the device maps that same physical page, so it reads the new value.
process.Store(buf, 0xCAFEUL);
// 5. madvise(MADV_DONTNEED) on page 1: the notifier invalidates the device's mapping; the GPU refaults
//    and reads the fresh zero page, as a CPU would.
process.Madvise(buf + P, P, Advice.DontNeed);
device.Executor.LaunchOnePerThread(driver.Instance, client: 1, [new DeviceOp(buf, DeviceAccess.Read), new DeviceOp(buf + P, DeviceAccess.Read)]);
driver.RunToCompletion();
if (device.Executor.ResultOf(0) != 0xCAFEUL) mismatches++;
if (device.Executor.ResultOf(1) != 0UL) mismatches++;

Console.WriteLine($"{"counter",-28} {"value",12}");
Console.WriteLine($"{"device faults",-28} {device.Meters.Faults,12}");
Console.WriteLine($"{"fault batches",-28} {device.Meters.FaultBatches,12}");
Console.WriteLine($"{"replays",-28} {device.Meters.Replays,12}");
Console.WriteLine($"{"pages mirrored",-28} {driver.PagesMirrored,12}");
Console.WriteLine($"{"pages programmed (callback)",-28} {driver.PagesProgrammed,12}");
Console.WriteLine($"{"invalidations",-28} {driver.RangesInvalidated,12}");
Console.WriteLine($"{"pages migrated to device",-28} {driver.PagesMigratedToDevice,12}");
Console.WriteLine($"{"bytes copied (both ways)",-28} {device.Meters.BytesCopied,12}");
Console.WriteLine($"{"simulated time (us)",-28} {device.Clock.Now / 1000.0,12:F1}");
Console.WriteLine(mismatches == 0 ? "data verified: every value read matched what was written" : $"data mismatches: {mismatches}");

driver.Detach();
driver.RemoveDeviceMemory();
process.Exit();
machine.CheckInvariants();
return mismatches == 0 ? 0 : 1;
