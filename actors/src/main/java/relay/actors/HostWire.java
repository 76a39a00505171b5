package relay.actors;

import java.util.EnumMap;
import java.util.LinkedHashMap;
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
            b.setSpawn(HostCommand.Spawn.newBuilder().setSpec(Wire.spec(m.spec())).setEvents(w.ref(m.events())));
        } else if (c instanceof StageHost.ReportMemory m) {
            b.setReportMemory(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.StopStages m) {
            b.setStopStages(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.Ping m) {
            b.setPing(HostCommand.ReportMemory.newBuilder().setReplyTo(w.ref(m.replyTo())));
        } else if (c instanceof StageHost.Refuse m) {
            b.setRefuse(HostCommand.Refuse.newBuilder().setWhy(m.why()));
        } else {
            throw Codecs.unknown(c);
        }
        return b.build();
    }

    static StageHost.Command hostCommand(HostCommand p, Wire w) {
        return switch (p.getCommandCase()) {
            case SPAWN -> new StageHost.Spawn(Wire.spec(p.getSpawn().getSpec()), w.ref(p.getSpawn().getEvents()));
            case REPORT_MEMORY -> new StageHost.ReportMemory(w.ref(p.getReportMemory().getReplyTo()));
            case STOP_STAGES -> new StageHost.StopStages(w.ref(p.getStopStages().getReplyTo()));
            case PING -> new StageHost.Ping(w.ref(p.getPing().getReplyTo()));
            case REFUSE -> new StageHost.Refuse(p.getRefuse().getWhy());
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
