package relay.actors;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A checkpoint's optimizer state back to the stages that keep it: each "parameter/role" key goes to the stages
 * that keep the parameter's state, in message-sized parts. Every key must be taken by some stage; one that is
 * not belongs to another model or optimizer.
 */
final class RestoreRouting extends Gathering {
    private final Map<String, float[]> values;

    RestoreRouting(Coordinator.Restore restore, PipelineStages stages, CoordinatorLoad load) {
        super(stages, load, restore.replyTo());
        this.values = restore.values();
    }

    /** The parameter whose state a key names: "parameter/role" → "parameter". */
    static String parameterOf(String key) {
        return key.substring(0, Math.max(0, key.indexOf('/')));
    }

    @Override
    void ask() {
        for (int s = 0; s < stages.size(); s++) {
            Set<String> mine = new HashSet<>(stages.stateOwners().get(s));
            Map<String, float[]> part = new LinkedHashMap<>();
            values.forEach((k, v) -> {
                if (mine.contains(parameterOf(k))) part.put(k, v);
            });
            List<List<TensorPart>> groups = TensorPart.split(part, TensorPart.MESSAGE_FLOATS);
            for (int g = 0; g < groups.size(); g++) stages.get(s).tell(new StageCommand.RestoreState(groups.get(g), g == groups.size() - 1));
        }
    }

    @Override
    boolean answers(StageEvent e) {
        return e instanceof StageEvent.Restored;
    }

    @Override
    String check(List<StageEvent> all) {
        Set<String> taken = new HashSet<>();
        for (StageEvent e : all) {
            StageEvent.Restored r = (StageEvent.Restored) e;
            if (r.error() != null) return "optimizer state: " + r.error();
            taken.addAll(r.held());
        }
        List<String> left = values.keySet().stream().filter(k -> !taken.contains(k)).sorted().limit(5).toList();
        return left.isEmpty() ? null : "optimizer state no stage of this pipeline holds: " + left;
    }

    @Override
    String what() {
        return "restoring the optimizer state";
    }
}
