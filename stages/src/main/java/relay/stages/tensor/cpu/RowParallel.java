package relay.stages.tensor.cpu;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Splits a loop over rows across a device's own threads. The caller's thread takes one share,
 * so a one-thread device runs everything inline and starts no thread at all.
 */
final class RowParallel implements AutoCloseable {
    /** Below this many elements of work a split costs more than it saves. */
    private static final long MIN_WORK = 1 << 15;

    interface Body {
        void run(int from, int to);
    }

    private final int threads;
    private final ExecutorService pool;

    RowParallel(int threads, String device) {
        this.threads = threads;
        AtomicInteger n = new AtomicInteger();
        this.pool = threads == 1 ? null : Executors.newFixedThreadPool(threads - 1, r -> {
            Thread t = new Thread(r, "relay-" + device + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** Runs body over [0, rows), each row costing about {@code workPerRow} elements. */
    void forRows(int rows, long workPerRow, Body body) {
        int parts = (int) Math.min(threads, Math.max(1, rows * workPerRow / MIN_WORK));
        parts = Math.min(parts, rows);
        if (parts <= 1) {
            body.run(0, rows);
            return;
        }
        @SuppressWarnings("unchecked")
        Future<?>[] futures = new Future<?>[parts - 1];
        for (int p = 1; p < parts; p++) {
            int from = (int) ((long) rows * p / parts), to = (int) ((long) rows * (p + 1) / parts);
            futures[p - 1] = pool.submit(() -> body.run(from, to));
        }
        body.run(0, rows / parts);
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for a kernel", e);
            } catch (java.util.concurrent.ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof RuntimeException re) throw re;
                if (cause instanceof Error err) throw err;
                throw new IllegalStateException(cause);
            }
        }
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdownNow();
    }
}
