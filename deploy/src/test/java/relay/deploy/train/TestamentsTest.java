package relay.deploy.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The fine-tuning comparison's split of the shipped Bible, against the King James Version's known verse counts. */
class TestamentsTest {
    @Test
    void theSplitFallsBetweenMalachiAndMatthewAndHoldsOutEveryTenthVerse() {
        List<String> verses = RunInputs.corpus("builtin:kjv");
        Testaments.Split s = Testaments.split(verses);
        // The KJV has 23,145 Old Testament and 7,957 New Testament verses.
        assertEquals(23_145, s.old().size());
        assertEquals(7_957, s.train().size() + s.tuning().size() + s.test().size());
        assertTrue(s.old().get(s.old().size() - 1).startsWith("And he shall turn the heart of the fathers"), "Malachi 4:6 ends it");
        assertEquals(Testaments.FIRST_NEW_TESTAMENT_VERSE, s.test().get(0));
        assertEquals(796, s.test().size());
        assertEquals(796, s.tuning().size());
        Set<String> train = new HashSet<>(s.train());
        // Verses repeat in the Bible; a held-out verse may equal a training one only as such a repeat.
        long repeated = s.test().stream().filter(train::contains).count() + s.tuning().stream().filter(train::contains).count();
        assertTrue(repeated < 40, repeated + " held-out verses also occur among the training verses");
    }
}
