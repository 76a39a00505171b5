package relay.actors;

import relay.optimizers.Method;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import relay.stages.train.Batch;

class TracingTest {
    @TempDir
    Path dir;

    /** The trace is Chrome trace JSON: a process per device, a named track per actor, spans with step and microbatch. */
    @Test
    void traceHasATrackPerActorGroupedByDevice() throws Exception {
        Placement placement = PipelineEquivalenceTest.placement(2);
        List<List<Batch>> data = PipelineEquivalenceTest.data(PipelineEquivalenceTest.LLAMA, 2);
        Path file = dir.resolve("trace.json");
        try (Pipeline p = Pipeline.start(PipelineEquivalenceTest.LLAMA, 1, placement,
                PipelineConfig.defaults(Method.LOMO, 0.1f).withTrace(true), PipelineEquivalenceTest.SERIALIZE)) {
            assertTrue(p.step(data.get(0)).ok());
            p.writeTrace(file);
        }
        JsonArray events = JsonParser.parseString(Files.readString(file)).getAsJsonObject().getAsJsonArray("traceEvents");
        Set<String> tracks = new HashSet<>(), spanNames = new HashSet<>();
        Set<Integer> processes = new HashSet<>();
        for (JsonElement e : events) {
            JsonObject o = e.getAsJsonObject();
            String ph = o.get("ph").getAsString();
            if (ph.equals("M") && o.get("name").getAsString().equals("thread_name")) {
                tracks.add(o.getAsJsonObject("args").get("name").getAsString());
            } else if (ph.equals("M") && o.get("name").getAsString().equals("process_name")) {
                processes.add(o.get("pid").getAsInt());
            } else if (ph.equals("X")) {
                spanNames.add(o.get("name").getAsString());
                assertTrue(o.get("dur").getAsLong() > 0 && o.get("ts").getAsLong() >= 0);
                assertTrue(o.getAsJsonObject("args").has("microbatch"));
                int stageOfTrack = o.get("tid").getAsInt();
                assertEquals(placement.device(stageOfTrack), o.get("pid").getAsInt(), "a track lives in its device's process");
            }
        }
        for (int b = 0; b < PipelineEquivalenceTest.LLAMA.layers(); b++) assertTrue(tracks.contains("block-" + b), tracks.toString());
        assertTrue(tracks.contains("embedding") && tracks.contains("head"));
        assertEquals(Set.of(0, 1), processes);
        assertTrue(spanNames.containsAll(Set.of("forward", "backward", "update", "send", "wait")), spanNames.toString());
    }

    /** Off, nothing is recorded. */
    @Test
    void noTraceWhenOff() {
        try (Pipeline p = Pipeline.start(PipelineEquivalenceTest.LLAMA, 1, PipelineEquivalenceTest.placement(1),
                PipelineConfig.defaults(Method.LOMO, 0.1f), PipelineEquivalenceTest.SERIALIZE)) {
            assertTrue(p.step(PipelineEquivalenceTest.data(PipelineEquivalenceTest.LLAMA, 1).get(0)).ok());
            assertTrue(p.trace().isEmpty());
        }
    }
}
