namespace Gazelle;

/// <summary>
/// Marks a counter that records the final fate of a received frame (handled, or dropped for a named
/// reason). Every frame the stack receives increments exactly one such counter, so their sum equals
/// the frames received: tests check it to prove that no drop goes uncounted.
/// </summary>
[AttributeUsage(AttributeTargets.Field)]
public sealed class FrameOutcomeAttribute : Attribute
{
}
