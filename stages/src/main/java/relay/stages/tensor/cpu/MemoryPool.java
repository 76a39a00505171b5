package relay.stages.tensor.cpu;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Keeps freed native blocks for reuse by the next allocation of the same size. A training step
 * allocates the same shapes every time; without reuse each large block costs an mmap, a page fault
 * per 4 KiB on first touch and an munmap. What the pool holds is not in use, so the memory ledger
 * (live tensors) does not count it; {@link #cachedBytes()} reports it separately.
 */
final class MemoryPool {
    private final long limitBytes;
    private final Map<Long, ArrayDeque<CpuMemory>> bySize = new HashMap<>();
    /** Insertion order of sizes, oldest first, for eviction. */
    private final LinkedHashMap<CpuMemory, Long> order = new LinkedHashMap<>();
    private long cachedBytes;

    MemoryPool(long limitBytes) {
        this.limitBytes = limitBytes;
    }

    /** A cached block of exactly this many bytes, or null. */
    synchronized CpuMemory take(long bytes) {
        ArrayDeque<CpuMemory> q = bySize.get(bytes);
        CpuMemory m = q == null ? null : q.pollLast();
        if (m != null) {
            order.remove(m);
            cachedBytes -= m.bytes();
        }
        return m;
    }

    /** Keeps a block for reuse, releasing the oldest cached blocks beyond the limit. */
    synchronized void give(CpuMemory m) {
        long bytes = m.bytes();
        if (m.bytes() > limitBytes) {
            m.release();
            return;
        }
        bySize.computeIfAbsent(bytes, k -> new ArrayDeque<>()).addLast(m);
        order.put(m, bytes);
        cachedBytes += m.bytes();
        Iterator<Map.Entry<CpuMemory, Long>> it = order.entrySet().iterator();
        while (cachedBytes > limitBytes && it.hasNext()) {
            Map.Entry<CpuMemory, Long> oldest = it.next();
            it.remove();
            bySize.get(oldest.getValue()).remove(oldest.getKey());
            cachedBytes -= oldest.getKey().bytes();
            oldest.getKey().release();
        }
    }

    synchronized long cachedBytes() {
        return cachedBytes;
    }

    synchronized void clear() {
        for (CpuMemory m : order.keySet()) m.release();
        order.clear();
        bySize.clear();
        cachedBytes = 0;
    }
}
