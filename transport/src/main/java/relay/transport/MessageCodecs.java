package relay.transport;

import java.util.List;

/** A provider of codecs, registered under META-INF/services for {@link java.util.ServiceLoader}. */
public interface MessageCodecs {
    List<MessageCodec<?>> codecs();
}
