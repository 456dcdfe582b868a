namespace IoTHub.Contracts;

/// <summary>A start-up failure a module can explain itself in one sentence (e.g. "port 5683 (CoAP) is already in use by
/// another program; ..."): the hub prints <c>IoTHub cannot start: </c> and the sentence, and exits with code 1.</summary>
/// <param name="sentence">What is wrong and what to change, without the "IoTHub cannot start:" prefix.</param>
/// <param name="inner">The exception behind it.</param>
public sealed class StartupProblem(string sentence, Exception? inner = null) : Exception(sentence, inner);
