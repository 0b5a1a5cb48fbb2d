// The runtime never uses System.Threading.SpinLock: every lock is a Hmm.Runtime.Locking primitive
// so the lock validator sees it (ARCHITECTURE §6).
global using SpinLock = Hmm.Runtime.Locking.SpinLock;
