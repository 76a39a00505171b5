package relay.actors;

import relay.stages.tensor.Device;
import relay.stages.tensor.cpu.CpuDevice;
import relay.stages.tensor.sim.Roofline;
import relay.stages.tensor.sim.SimDevice;

/** How a node makes its devices: CPU devices, or simulated ones (for planning, and for running many stages on one machine). */
@FunctionalInterface
public interface DeviceKind {

    /** Device {@code index} of the node, computing with {@code threads} threads where it has threads. */
    Device open(int index, int threads);

    DeviceKind CPU = (index, threads) -> new CpuDevice("cpu" + index, threads);

    /** Simulated devices of this roofline, each kernel waiting {@code pace} of its modelled time (0: none). */
    static DeviceKind simulated(Roofline roofline, double pace) {
        return (index, threads) -> new SimDevice("sim" + index, roofline, pace);
    }
}
