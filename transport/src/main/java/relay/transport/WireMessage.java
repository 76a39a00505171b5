package relay.transport;

/** A message that may cross a JVM: it is serialized through its {@link MessageCodec} as Protobuf. */
public interface WireMessage {}
