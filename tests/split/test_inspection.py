"""``inspect`` without a label: which columns it suggests as the label, and why."""

from questlearn.split.inspection import inspect_source


def report(path, header, rows):
    path.write_text(header + "\n" + "".join(row + "\n" for row in rows))
    printed = []
    inspect_source(path, label=None, print_to=printed.append)
    return printed[-1]


DIAMOND_CUTS = ("Ideal", "Premium", "Good", "Very Good", "Fair")


def test_a_table_without_a_label_like_column_gets_no_guess_and_the_way_to_pass_one(tmp_path):
    rows = [f"{0.2 + i / 100:.2f},{DIAMOND_CUTS[i % 5]},{'DEFGHIJ'[i % 7]},{('SI1', 'VS2', 'VVS1')[i % 3]},"
            f"{60 + i % 30 / 10:.1f},{55 + i % 6},{300 + 7 * i},{3.9 + i / 97:.2f},{3.95 + i / 89:.2f},{2.4 + i / 101:.2f}"
            for i in range(300)]
    said = report(tmp_path / "diamonds.csv", "carat,cut,color,clarity,depth,table,price,x,y,z", rows)
    assert said.startswith("no label was guessed:"), said  # not y (a width in mm), nor z for being last
    assert "likely label" not in said and "--label NAME" in said and "--task regression" in said


def test_each_suggested_label_comes_with_its_reason(tmp_path):
    rows = [f"{i % 13},{i * 0.37:.2f},{i % 2},{i % 5},{(i // 3) % 2}" for i in range(200)]
    said = report(tmp_path / "scores.csv", "x,y,y_true,score,done", rows)
    assert said.startswith("likely label columns: y_true (its name, 2 values), done (2 values, the last column)\n"), said
    assert "--label y_true" in said
