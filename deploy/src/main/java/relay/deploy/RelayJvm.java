package relay.deploy;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;

/** The command line of another relay JVM on this machine: this JVM's java, its JVM options and class path, and the relay arguments. */
final class RelayJvm {
    private RelayJvm() {}

    static List<String> command(List<String> args) {
        return command(List.of(), args);
    }

    /** The same with JVM options of its own, given before this JVM's (so that an option the user chose wins). */
    static List<String> command(List<String> jvmOptions, List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse("java"));
        cmd.addAll(jvmOptions);
        // The options this JVM was started with (stack size, native memory settings, a heap size the user chose).
        for (String o : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!o.startsWith("-agentlib:") && !o.startsWith("-javaagent:")) cmd.add(o);
        }
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Relay.class.getName()));
        cmd.addAll(args);
        return cmd;
    }
}
