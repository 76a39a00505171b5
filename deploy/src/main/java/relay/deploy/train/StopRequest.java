package relay.deploy.train;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A stop asked for by SIGTERM or SIGINT (a scheduler preempting the job, Ctrl-C): the JVM's shutdown waits
 * while the run finishes its step and writes a checkpoint, so the run can be resumed from where it was
 * stopped. The wait is bounded, so a step that hangs cannot keep the process alive. While the run is still
 * being prepared (a tokenizer trained, a corpus read) nothing has been written, and a stop ends it at once.
 */
final class StopRequest implements AutoCloseable {
    /** Long enough for a large model's step and checkpoint; SLURM's KillWait should be set above it for those. */
    private static final long GRACE_SECONDS = 300;

    private final CountDownLatch finished = new CountDownLatch(1);
    private final Thread hook = new Thread(this::awaitRun, "relay-stop");
    private volatile boolean requested;
    private volatile boolean complete;
    /** Whether the run has begun writing (guarded by this). */
    private boolean begun;

    StopRequest() {
        Runtime.getRuntime().addShutdownHook(hook);
    }

    /**
     * The run is prepared and begins to write: a stop from now on waits for it. After a stop that came while it was
     * prepared, the process is ending: this thread waits for that, writing nothing.
     */
    void begin() {
        synchronized (this) {
            if (!requested) {
                begun = true;
                return;
            }
        }
        while (true) java.util.concurrent.locks.LockSupport.park(this);
    }

    /** Whether the run should stop after the step it is in. */
    boolean requested() {
        return requested;
    }

    /** The run did all its steps: a signal from now on stops nothing, and the process ends as a finished run does. */
    void complete() {
        complete = true;
    }

    private void awaitRun() {
        synchronized (this) {
            requested = true;
            if (!begun) {
                System.out.flush();
                System.err.println("relay: stopped by a signal while the run was being prepared; nothing was written: run the same command "
                        + "again");
                return;
            }
        }
        try {
            finished.await(GRACE_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        // A signal after the last step (a scheduler's, arriving as the run ends) must not make a finished run look
        // stopped: exit 143 would have a batch system requeue it.
        if (complete) {
            System.out.flush();
            Runtime.getRuntime().halt(0);
        }
    }

    /** The run is over (finished or stopped): a shutdown need not wait, and a normal one is no stop. */
    @Override
    public void close() {
        finished.countDown();
        try {
            Runtime.getRuntime().removeShutdownHook(hook);
        } catch (IllegalStateException shuttingDown) {
            // The hook is running: it returns now that the run is over.
        }
    }
}
