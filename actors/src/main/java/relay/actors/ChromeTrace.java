package relay.actors;

import com.google.gson.Gson;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import relay.stages.io.FileWrites;

/**
 * Writes trace events as Chrome/Perfetto JSON ({@code {"traceEvents": [...]}}): one process per device,
 * one named thread (track) per actor, spans as complete events with step and microbatch in args. Opens
 * in ui.perfetto.dev or chrome://tracing.
 */
public final class ChromeTrace {
    private ChromeTrace() {}

    public static void write(Path file, List<TraceEvent> events, Map<Integer, String> deviceNames) throws IOException {
        List<Map<String, Object>> out = new ArrayList<>();
        Map<Integer, String> tracks = new TreeMap<>();
        Map<Integer, Integer> trackDevice = new TreeMap<>();
        for (TraceEvent e : events) {
            tracks.put(e.track(), e.actor());
            trackDevice.put(e.track(), e.device());
        }
        deviceNames.forEach((pid, name) -> out.add(meta("process_name", pid, 0, name)));
        tracks.forEach((tid, name) -> {
            out.add(meta("thread_name", trackDevice.get(tid), tid, name));
            out.add(Map.of("name", "thread_sort_index", "ph", "M", "pid", trackDevice.get(tid), "tid", tid,
                    "args", Map.of("sort_index", tid)));
        });
        for (TraceEvent e : events) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("name", e.name());
            o.put("cat", e.actor());
            o.put("ph", "X");
            o.put("ts", e.startMicros());
            o.put("dur", e.durationMicros());
            o.put("pid", e.device());
            o.put("tid", e.track());
            o.put("args", Map.of("step", e.step(), "microbatch", e.microbatch()));
            out.add(o);
        }
        FileWrites.writeString(file, new Gson().toJson(Map.of("traceEvents", out, "displayTimeUnit", "ms")));
    }

    private static Map<String, Object> meta(String kind, int pid, int tid, String name) {
        return Map.of("name", kind, "ph", "M", "pid", pid, "tid", tid, "args", Map.of("name", name));
    }
}
