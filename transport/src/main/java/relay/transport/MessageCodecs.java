package relay.transport;

import java.util.List;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * A provider of codecs, registered under META-INF/services for {@link java.util.ServiceLoader}. It gets the
 * actor system its serializer runs in, to write and resolve actor references.
 */
public interface MessageCodecs {
    List<MessageCodec<?>> codecs(ActorSystem<?> system);
}
