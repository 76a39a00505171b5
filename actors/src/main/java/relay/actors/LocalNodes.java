package relay.actors;

import com.typesafe.config.Config;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;

/** This JVM alone: one node, whose host holds every device and is never lost. */
final class LocalNodes extends Nodes {
    private LocalNodes(ActorSystem<Local> system) {
        super(system);
    }

    static LocalNodes start(Config extra, DeviceKind kind) {
        LocalNodes node = new LocalNodes(system(extra));
        try {
            node.hosts.add(spawnIn(node.system, StageHost.create(kind), "host-0"));
            return node;
        } catch (RuntimeException e) {
            node.system.terminate();
            throw e;
        }
    }

    @Override
    ActorRef<StageHost.Command> hostOf(int d, int devices) {
        return hosts.get(0);
    }

    @Override
    public String nodeOf(int d, int devices) {
        return "node 0";
    }

    @Override
    boolean alive(ActorRef<?> host) {
        return true;
    }

    @Override
    public String address() {
        return "this JVM";
    }
}
