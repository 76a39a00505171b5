package relay.actors;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import relay.stages.memory.Category;
import relay.transport.proto.HostCommand;

/** The Protobuf forms of a stage host's commands and of its devices' memory report. */
final class HostWire {
    private HostWire() {}

    static HostCommand hostCommand(StageHost.Command c, Wire w) {
        var b = HostCommand.newBuilder();
        if (c instanceof StageHost.Spawn m) {
            b.setSpawn(HostCommand.Spawn.newBuilder().setSpec(Wire.spec(m.spec())).setEvents(w.ref(m.events()))
                    .setNodeDevices(m.nodeDevices()));
        } else if (c instanceof StageHost.ReportMemory m) {
            b.setReportMemory(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.StopStages m) {
            b.setStopStages(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.Ping m) {
            b.setPing(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.Refuse m) {
            b.setRefuse(HostCommand.Refuse.newBuilder().setWhy(m.why()));
        } else if (c instanceof StageHost.HoldSnapshot m) {
            b.setHoldSnapshot(HostCommand.HoldSnapshot.newBuilder().setStage(m.stage()).setStep(m.step()).setKeepFrom(m.keepFrom())
                    .setState(m.state()).addAllParts(Wire.partHeaders(m.parts())).setLast(m.last()).setAck(w.ref(m.ack())));
        } else if (c instanceof StageHost.SendSnapshot m) {
            b.setSendSnapshot(HostCommand.SendSnapshot.newBuilder().setStage(m.stage()).setStep(m.step()).addAllNames(m.names())
                    .setTo(w.ref(m.to())).setChannel(m.channel()).setSources(m.sources()).setEvents(w.ref(m.events())));
        } else {
            throw Codecs.unknown(c);
        }
        return b.build();
    }

    static StageHost.Command hostCommand(HostCommand p, java.nio.ByteBuffer in, Wire w) {
        return switch (p.getCommandCase()) {
            case SPAWN -> new StageHost.Spawn(Wire.spec(p.getSpawn().getSpec()), w.ref(p.getSpawn().getEvents()), p.getSpawn().getNodeDevices());
            case REPORT_MEMORY -> new StageHost.ReportMemory(w.ref(p.getReportMemory().getReplyTo()));
            case STOP_STAGES -> new StageHost.StopStages(w.ref(p.getStopStages().getReplyTo()));
            case PING -> new StageHost.Ping(w.ref(p.getPing().getReplyTo()));
            case REFUSE -> new StageHost.Refuse(p.getRefuse().getWhy());
            case HOLD_SNAPSHOT -> {
                HostCommand.HoldSnapshot h = p.getHoldSnapshot();
                yield new StageHost.HoldSnapshot(h.getStage(), h.getStep(), h.getKeepFrom(), h.getState(), Wire.readParts(h.getPartsList(), in),
                        h.getLast(), w.ref(h.getAck()));
            }
            case SEND_SNAPSHOT -> {
                HostCommand.SendSnapshot h = p.getSendSnapshot();
                yield new StageHost.SendSnapshot(h.getStage(), h.getStep(), List.copyOf(h.getNamesList()), w.ref(h.getTo()), h.getChannel(),
                        h.getSources(), w.ref(h.getEvents()));
            }
            case COMMAND_NOT_SET -> throw new IllegalArgumentException("a host command without a command");
        };
    }

    static relay.transport.proto.DeviceMemory memory(StageHost.DeviceMemory m) {
        var b = relay.transport.proto.DeviceMemory.newBuilder();
        m.peaks().forEach((d, peaks) -> {
            var device = relay.transport.proto.DeviceMemory.Device.newBuilder().setDevice(d);
            peaks.forEach((c, bytes) -> device.putPeakBytes(c.key(), bytes));
            b.addDevices(device);
        });
        return b.build();
    }

    static StageHost.DeviceMemory memory(relay.transport.proto.DeviceMemory p) {
        Map<Integer, Map<Category, Long>> peaks = new LinkedHashMap<>();
        for (var d : p.getDevicesList()) {
            Map<Category, Long> m = new EnumMap<>(Category.class);
            d.getPeakBytesMap().forEach((k, v) -> m.put(Category.valueOf(k.toUpperCase(Locale.ROOT)), v));
            peaks.put(d.getDevice(), m);
        }
        return new StageHost.DeviceMemory(peaks);
    }
}
