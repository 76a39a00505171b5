package relay.stages.memory;

import java.util.EnumMap;
import java.util.Map;

/**
 * Exact byte counts of one device's live allocations, per category, with their peaks.
 * Every tensor allocation and free on the device goes through here, so the numbers are
 * what was really held, not an estimate. Synchronized: allocation is rare next to the math.
 */
public final class MemoryLedger {
    private static final int N = Category.values().length;

    private final long[] current = new long[N];
    private final long[] peak = new long[N];
    private long currentTotal;
    private long peakTotal;

    public synchronized void allocated(Category c, long bytes) {
        int i = c.ordinal();
        current[i] += bytes;
        peak[i] = Math.max(peak[i], current[i]);
        currentTotal += bytes;
        peakTotal = Math.max(peakTotal, currentTotal);
    }

    public synchronized void released(Category c, long bytes) {
        int i = c.ordinal();
        if (bytes > current[i]) {
            throw new IllegalStateException("releasing " + bytes + " bytes of " + c.key()
                    + " but only " + current[i] + " are held");
        }
        current[i] -= bytes;
        currentTotal -= bytes;
    }

    public synchronized long current(Category c) {
        return current[c.ordinal()];
    }

    public synchronized long peak(Category c) {
        return peak[c.ordinal()];
    }

    public synchronized long currentTotal() {
        return currentTotal;
    }

    /** The peak of the sum of all categories, which is at most the sum of the per-category peaks. */
    public synchronized long peakTotal() {
        return peakTotal;
    }

    /** Starts a new measurement window: peaks drop to what is held now. */
    public synchronized void resetPeaks() {
        System.arraycopy(current, 0, peak, 0, N);
        peakTotal = currentTotal;
    }

    public synchronized Map<Category, Long> peaks() {
        Map<Category, Long> m = new EnumMap<>(Category.class);
        for (Category c : Category.values()) m.put(c, peak[c.ordinal()]);
        return m;
    }

    public synchronized Map<Category, Long> currents() {
        Map<Category, Long> m = new EnumMap<>(Category.class);
        for (Category c : Category.values()) m.put(c, current[c.ordinal()]);
        return m;
    }
}
