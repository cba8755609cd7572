using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Gazelle;

/// <summary>Cold-path throws kept out of line so callers stay small and inlinable.</summary>
internal static class ThrowHelpers
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ArgumentOutOfRange(string name) => throw new ArgumentOutOfRangeException(name);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void InvalidOperation(string message) => throw new InvalidOperationException(message);
}
