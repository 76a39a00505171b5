package relay.deploy;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;

/**
 * What `mvn package` leaves in deploy/target, made from this test JVM's class path (tests run before packaging):
 * relay.jar, whose manifest names the main class and lib/'s jars, and lib/ (a class directory becomes a jar).
 */
final class RelayHome {
    private RelayHome() {}

    static Path assemble(Path home) throws IOException {
        Path lib = Files.createDirectories(home.resolve("lib"));
        List<String> names = new ArrayList<>();
        int k = 0;
        for (String entry : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            Path p = Path.of(entry);
            if (!Files.exists(p)) continue;
            String name = (k++) + "-" + p.getFileName() + (Files.isDirectory(p) ? ".jar" : "");
            if (Files.isDirectory(p)) jar(p, lib.resolve(name), null);
            else Files.copy(p, lib.resolve(name));
            names.add("lib/" + name);
        }
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().put(Attributes.Name.MAIN_CLASS, Relay.class.getName());
        m.getMainAttributes().put(Attributes.Name.CLASS_PATH, String.join(" ", names));
        jar(null, home.resolve("relay.jar"), m);
        return home;
    }

    private static void jar(Path classes, Path to, Manifest manifest) throws IOException {
        try (OutputStream o = Files.newOutputStream(to);
             JarOutputStream j = manifest == null ? new JarOutputStream(o) : new JarOutputStream(o, manifest)) {
            if (classes == null) return;
            try (Stream<Path> files = Files.walk(classes)) {
                for (Path f : files.filter(Files::isRegularFile).toList()) {
                    j.putNextEntry(new JarEntry(classes.relativize(f).toString().replace('\\', '/')));
                    Files.copy(f, j);
                    j.closeEntry();
                }
            }
        }
    }
}
