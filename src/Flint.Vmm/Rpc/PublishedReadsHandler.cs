namespace Flint.Vmm.Rpc;

/// <summary>
/// The API server's handler in flint: answers what <see cref="PublishedAnswers"/> holds on the calling (API) thread,
/// and sends everything else to <paramref name="inner"/> (the queue to the VMM thread). The answers are the ones the
/// VMM thread would give (<see cref="PublishedAnswers"/> says why they are never stale); logging and the request
/// counters are the API server's, the same for both ways.
/// </summary>
public sealed class PublishedReadsHandler(PublishedAnswers answers, IApiHandler inner) : IApiHandler
{
    public ApiResponse Handle(VmmAction action) => answers.TryAnswer(action) ?? inner.Handle(action);
}
