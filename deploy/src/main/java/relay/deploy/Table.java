package relay.deploy;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/** A plain text table with right-aligned columns after the first. */
final class Table {
    private final List<String[]> rows = new ArrayList<>();

    Table(String... header) {
        rows.add(header);
    }

    Table row(Object... cells) {
        String[] s = new String[cells.length];
        for (int i = 0; i < cells.length; i++) s[i] = String.valueOf(cells[i]);
        rows.add(s);
        return this;
    }

    void print(PrintStream out) {
        int cols = rows.get(0).length;
        int[] w = new int[cols];
        for (String[] r : rows) for (int i = 0; i < cols; i++) w[i] = Math.max(w[i], r[i].length());
        for (int k = 0; k < rows.size(); k++) {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < cols; i++) {
                String cell = rows.get(k)[i];
                String pad = " ".repeat(w[i] - cell.length());
                sb.append(i == 0 ? cell + pad : pad + cell).append(i + 1 < cols ? "  " : "");
            }
            out.println(sb.toString().stripTrailing());
            if (k == 0) out.println("-".repeat(sb.toString().stripTrailing().length()));
        }
    }
}
