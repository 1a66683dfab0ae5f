"""Every bad input the command line refuses before training, with the message the user sees.

Shared by ``tests/test_cli.py`` (each case exits 2 with its message) and
``scripts/bad_input_table.py``, which writes the table of the reliability page
(``docs/snippets/bad_inputs.md``; ``tests/test_docs.py`` checks it is up to date).
"""

#: (what is wrong, command-line arguments, a part of the message that must appear)
CASES = [
    ("misspelt recipe", ["run", "nave"], "Did you mean naive"),
    ("misspelt benchmark", ["run", "naive", "--benchmark", "split_digit"], "Did you mean split_digits"),
    ("scenario the recipe does not support", ["run", "multihead", "--scenario", "class"],
     "supports the task scenario(s), not 'class'"),
    ("scenario the benchmark does not have", ["run", "naive", "--benchmark", "permuted_digits", "--scenario", "class"],
     "supports scenarios domain, task"),
    ("unknown hyper-parameter", ["run", "naive", "--set", "lrr=0.1"], "no hyper-parameter 'lrr'. Did you mean lr"),
    ("value of the wrong type", ["run", "naive", "--set", "lr=fast"], "lr='fast': expected float"),
    ("float where an int is expected", ["run", "naive", "--set", "epochs=1.5"], "expected int"),
    ("--set without a value", ["run", "naive", "--set", "lr"], "--set expects key=value"),
    ("zero memory size", ["run", "replay", "--set", "mem_size=0"], "mem_size must be > 0"),
    ("negative memory size", ["run", "replay", "--set", "mem_size=-5"], "mem_size must be > 0"),
    ("no experience", ["run", "naive", "--n-experiences", "0"], "--n-experiences must be >= 1"),
    ("data root without the raw files", ["run", "naive", "--benchmark", "split_mnist", "--data-root", "/nonexistent"],
     "MNIST/raw"),
    ("unreachable MLflow server", ["run", "naive", "--tracking-uri", "http://127.0.0.1:9"],
     "cannot reach the MLflow tracking server"),
    ("streaming protocol for a recipe that trains once", ["run", "joint", "--online"], "no streaming protocol"),
    ("several epochs in the streaming protocol", ["run", "naive", "--online", "--epochs", "3"],
     "--epochs must be 1 with --online"),
    ("empty online mini-experiences", ["run", "naive", "--online", "--online-size", "0"],
     "--online-size must be >= 1"),
    ("--resume without checkpoints", ["run", "naive", "--no-checkpoint", "--resume"],
     "--resume and --stop-after need checkpoints"),
    ("stop before the first experience", ["run", "naive", "--stop-after", "0"], "--stop-after must be >= 1"),
    ("no seed", ["taxonomy", "--seeds", "0"], "--seeds must be >= 1"),
    ("hyper-parameter no selected recipe has", ["taxonomy", "--set", "nonsense=1"],
     "no selected recipe has such a hyper-parameter"),
    ("unknown family", ["taxonomy", "--family", "magic"], "no recipe in family"),
]


def shown(argv: list[str]) -> str:
    """The command as a user types it."""
    return "avalanche-ext " + " ".join(argv)
