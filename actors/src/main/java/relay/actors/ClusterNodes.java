package relay.actors;

import org.apache.pekko.actor.Address;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.Member;
import org.apache.pekko.cluster.MemberStatus;
import org.apache.pekko.cluster.typed.Cluster;

/**
 * A node of a Pekko cluster: the coordinator's, or a worker's. Each worker offers its stage host through the
 * receptionist; the devices are split among the workers in order, and a worker is there while it is an up
 * member of the cluster.
 */
abstract sealed class ClusterNodes extends Nodes permits CoordinatorNodes, WorkerNode {
    ClusterNodes(ActorSystem<Local> system) {
        super(system);
    }

    @Override
    ActorRef<StageHost.Command> hostOf(int d, int devices) {
        if (devices < hosts.size()) {
            throw new IllegalArgumentException(devices + " devices cannot be split over " + hosts.size() + " worker nodes; use at least "
                    + hosts.size());
        }
        return hosts.get(d * hosts.size() / devices);
    }

    @Override
    public String nodeOf(int d, int devices) {
        return name(hostOf(d, devices));
    }

    @Override
    boolean alive(ActorRef<?> host) {
        Address a = host.path().address();
        if (!a.hasGlobalScope()) return true;
        for (Member m : Cluster.get(system).state().getMembers()) {
            if (m.address().equals(a)) return m.status() == MemberStatus.up();
        }
        return false;
    }

    @Override
    public String address() {
        return hostPort(Cluster.get(system).selfMember().address());
    }
}
