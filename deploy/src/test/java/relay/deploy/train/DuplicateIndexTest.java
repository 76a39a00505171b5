package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import relay.deploy.LoopbackCluster;
import relay.deploy.RelayProcess;

/**
 * A worker that comes with a node index a live worker holds — before the run starts, or while it goes on —
 * is refused: the coordinator says so on its console and in history.log, the refused node ends at once with
 * exit 2 and a line saying why, and the run goes on with the node that holds the index. The coordinator is
 * this test's JVM; the workers are relay node JVMs of their own.
 */
class DuplicateIndexTest {
    @TempDir
    Path dir;

    private final ByteArrayOutputStream console = new ByteArrayOutputStream();
    private final List<Worker> workers = Collections.synchronizedList(new ArrayList<>());

    /** A relay node JVM and the log of what it printed. */
    private record Worker(Process process, Path log) {
        String said() throws IOException {
            return Files.readString(log, StandardCharsets.UTF_8);
        }

        /** Where it listens, as it said on starting. */
        String address() throws IOException, InterruptedException {
            Pattern joining = Pattern.compile("node \\d+ at (\\S+) joining");
            for (long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60); System.nanoTime() < deadline; Thread.sleep(50)) {
                Matcher m = joining.matcher(said());
                if (m.find()) return m.group(1);
            }
            throw new AssertionError("the node did not say where it listens: " + said());
        }

        int exit() throws IOException, InterruptedException {
            assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the node ends: " + said());
            return process.exitValue();
        }
    }

    @AfterEach
    void stopWorkers() throws InterruptedException {
        for (Worker w : workers) {
            w.process().destroyForcibly();
            w.process().waitFor(30, TimeUnit.SECONDS);
        }
    }

    private Worker worker(int port, int index, String name) throws IOException {
        Path log = dir.resolve(name + ".log");
        Worker w = new Worker(RelayProcess.start(dir, log, "node", "--join", "127.0.0.1:" + port, "--index", String.valueOf(index)), log);
        workers.add(w);
        return w;
    }

    /** A run of four steps coordinated at this port, its engine passed through {@code wrap}. */
    private TrainingRun.Summary train(int port, int nodes, UnaryOperator<Engine> wrap) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        Files.writeString(corpus, "In the beginning was the word, and the word was with the node.\n".repeat(80));
        Config c = ConfigFactory.parseString("relay.train { model = llama-tiny, data = \"" + corpus + "\", steps = 4, batch = 2, seq = 16,"
                + " microbatches = 2, eval-every = 2, checkpoint-every = 4, trace-steps = 0, eval-sequences = 4, validation-fraction = 0.1,"
                + " nodes = " + nodes + " }, relay.cluster.port = " + port).withFallback(ConfigFactory.load()).resolve();
        return TrainingRun.run(TrainConfig.from(c), c, new PrintStream(console, true, StandardCharsets.UTF_8), null, dir.resolve("run"), wrap);
    }

    /** The engine, its step {@code at} held until {@code meanwhile} is done: something that happens while the run goes on. */
    private static Engine holding(Engine engine, int at, Callable<?> meanwhile) {
        AtomicInteger steps = new AtomicInteger();
        return (Engine) Proxy.newProxyInstance(Engine.class.getClassLoader(), new Class<?>[] {Engine.class}, (proxy, method, args) -> {
            if (method.getName().equals("step") && steps.incrementAndGet() == at) meanwhile.call();
            try {
                return method.invoke(engine, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        });
    }

    /**
     * The coordinator told of the refusal once, on its console and in history.log, naming both nodes; the refused
     * node ended with exit 2 and the same reason; the holder served the whole run and ended with it.
     */
    private void assertRefused(Worker refused, Worker holder, TrainingRun.Summary run) throws Exception {
        String why = "index 1 is held by node 1 (" + holder.address() + "); give it another --index";
        String line = "node 1 at " + refused.address() + " refused: " + why;
        List<String> said = console.toString(StandardCharsets.UTF_8).lines().filter(l -> l.contains("refused")).toList();
        assertEquals(List.of(line), said, console.toString(StandardCharsets.UTF_8));
        String history = Files.readString(run.directory().resolve("history.log"));
        assertTrue(history.contains(line) && history.contains("finished") && !history.contains("restarting"), history);
        assertEquals(2, refused.exit(), refused.said());
        assertTrue(refused.said().contains("relay: node 1: refused by the coordinator: " + why), refused.said());
        assertEquals(4, run.steps());
        assertEquals(0, holder.exit(), holder.said());
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aSecondNodeWithAnIndexInUseIsRefusedBeforeTheRunStarts() throws Exception {
        int port = LoopbackCluster.freePort();
        FutureTask<TrainingRun.Summary> run = new FutureTask<>(() -> train(port, 3, UnaryOperator.identity()));
        new Thread(run, "coordinator").start();
        Worker first = worker(port, 1, "first"), second = worker(port, 1, "second");
        // Whichever is up later is refused; the run cannot start before node 2 comes.
        Worker refused = CompletableFuture.anyOf(first.process().onExit(), second.process().onExit()).get(2, TimeUnit.MINUTES)
                == first.process() ? first : second;
        Worker holder = refused == first ? second : first;
        assertTrue(holder.process().isAlive(), holder.said());
        assertFalse(run.isDone());
        Worker other = worker(port, 2, "other");
        assertRefused(refused, holder, run.get(2, TimeUnit.MINUTES));
        assertEquals(0, other.exit(), other.said());
    }

    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aNodeWithAnIndexInUseThatComesWhileTheRunGoesOnIsRefused() throws Exception {
        int port = LoopbackCluster.freePort();
        Worker holder = worker(port, 1, "holder");
        AtomicReference<Worker> late = new AtomicReference<>();
        // The second step waits until the duplicate has come and gone, however long its JVM takes to start.
        TrainingRun.Summary run = train(port, 2, engine -> holding(engine, 2, () -> {
            late.set(worker(port, 1, "late"));
            return late.get().process().waitFor(2, TimeUnit.MINUTES);
        }));
        assertRefused(late.get(), holder, run);
    }
}
