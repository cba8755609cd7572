using System.Runtime.CompilerServices;

namespace Gazelle.Posix;

/// <summary>
/// The POSIX layer's lock: non-reentrant, one compare-and-swap to take it and one exchange to release it, no
/// thread id. <see cref="System.Threading.Lock"/> reads the caller's managed thread id on Enter and on Exit, a
/// thread-static that in the dlopened stack library costs a <c>__tls_get_addr</c> each time (3-5% of a TCP
/// ping-pong's CPU, perf). A contended Enter spins briefly, then sleeps on a private futex (the classic
/// three-state mutex: 0 free, 1 held, 2 held and someone may sleep).
/// <para>A struct, so that a <c>lock (_lock)</c> statement over it does not compile (it would silently take a
/// Monitor on a boxed copy): take it with <c>using (_lock.Hold())</c> or <see cref="Enter"/>/<see cref="Exit"/>.
/// With <c>checkOwner</c> (the tests' layers) it records its holder and throws on re-entry or on an Exit by
/// another thread, which a non-reentrant lock would otherwise turn into a hang.</para>
/// </summary>
internal readonly unsafe struct LayerLock
{
    private const int Free = 0, Held = 1, Contended = 2;
    /// <summary>The word and the owner sit in the middle of a pinned array (the futex needs a fixed address), a
    /// cache line away from anything else.</summary>
    private const int WordIndex = 16; // the owner (checkOwner) at WordIndex + 1
    /// <summary>Rounds of polite spinning before a contended Enter sleeps: the layer holds the lock for a call's
    /// stack work, a few microseconds.</summary>
    private const int SpinRounds = 64;

    private readonly int[] _cells;
    private readonly int* _word;
    private readonly bool _checkOwner;

    public LayerLock(bool checkOwner)
    {
        _cells = GC.AllocateArray<int>(WordIndex * 2, pinned: true);
        _word = (int*)Unsafe.AsPointer(ref _cells[WordIndex]);
        _checkOwner = checkOwner;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Enter()
    {
        if (_checkOwner) CheckNotHeldByCaller();
        if (Interlocked.CompareExchange(ref *_word, Held, Free) != Free) EnterContended();
        if (_checkOwner) _word[1] = Environment.CurrentManagedThreadId;
    }

    /// <summary>Takes the lock if it is free now.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnter()
    {
        if (_checkOwner) CheckNotHeldByCaller();
        if (Interlocked.CompareExchange(ref *_word, Held, Free) != Free) return false;
        if (_checkOwner) _word[1] = Environment.CurrentManagedThreadId;
        return true;
    }

    /// <summary>Takes the lock if it becomes free within <paramref name="wait"/> (diagnostics).</summary>
    public bool TryEnter(TimeSpan wait)
    {
        long until = Environment.TickCount64 + (long)wait.TotalMilliseconds;
        for (int i = 0; ; i++)
        {
            if (TryEnter()) return true;
            if (Environment.TickCount64 > until) return false;
            if (i < SpinRounds) Thread.SpinWait(20);
            else Thread.Sleep(1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Exit()
    {
        if (_checkOwner) CheckHeldByCaller();
        if (Interlocked.Exchange(ref *_word, Free) == Contended) Libc.FutexWake(_word, 1);
    }

    /// <summary>Whether some thread holds the lock (tests).</summary>
    public bool IsHeld => Volatile.Read(ref *_word) != Free;

    /// <summary>Holds the lock for a <c>using</c> block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Scope Hold()
    {
        Enter();
        return new Scope(this);
    }

    public readonly ref struct Scope(LayerLock owner)
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Dispose() => owner.Exit();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void EnterContended()
    {
        for (int i = 0; i < SpinRounds; i++)
        {
            Thread.SpinWait(20);
            if (Volatile.Read(ref *_word) == Free && Interlocked.CompareExchange(ref *_word, Held, Free) == Free) return;
        }
        // Mark it contended; whoever releases it then wakes a sleeper. Taken with 2, as we cannot know whether
        // others still sleep (a spurious wake costs one system call).
        while (Interlocked.Exchange(ref *_word, Contended) != Free) Libc.FutexWait(_word, Contended);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CheckNotHeldByCaller()
    {
        if (Volatile.Read(ref *_word) != Free && _word[1] == Environment.CurrentManagedThreadId)
            throw new InvalidOperationException("the POSIX layer's lock was taken again by the thread that holds it");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void CheckHeldByCaller()
    {
        if (Volatile.Read(ref *_word) == Free || _word[1] != Environment.CurrentManagedThreadId)
            throw new InvalidOperationException("the POSIX layer's lock was released by a thread that does not hold it");
        _word[1] = 0;
    }
}
