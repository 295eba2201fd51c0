namespace Flint.Devices.Virtio.VhostUser;

/// <summary>
/// A vhost-user exchange failed (connect, a message the backend did not take, an answer that was late, short or
/// malformed). The message is Firecracker's VhostUserError text ("Set owner failed: ..."), so API answers and logs
/// read as Firecracker's; the reason after the colon is Flint's own wording of what the backend did.
/// </summary>
public sealed class VhostUserException(string message) : Exception(message);
