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
    ("learning rate NaN", ["run", "naive", "--set", "lr=NaN"], "lr='NaN': must be a finite number"),
    ("learning rate nan (any case)", ["run", "naive", "--set", "lr=nan"], "lr='nan': must be a finite number"),
    ("infinite learning rate", ["run", "naive", "--set", "lr=inf"], "lr='inf': must be a finite number"),
    ("minus infinity", ["run", "naive", "--set", "weight_decay=-Infinity"], "must be a finite number"),
    ("negative learning rate", ["run", "naive", "--set", "lr=-0.01"], "lr must be > 0"),
    ("momentum of 1 or more", ["run", "naive", "--set", "momentum=1.5"], "momentum must be in [0, 1)"),
    ("negative weight decay", ["run", "naive", "--set", "weight_decay=-0.1"], "weight_decay must be >= 0"),
    ("negative seed", ["run", "naive", "--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
    ("seed above 2^32 - 1", ["run", "naive", "--seed", "4294967296"], "--seed must be an integer in [0, 4294967295]"),
    ("no torch thread", ["run", "naive", "--threads", "0"], "--threads must be >= 1"),
    ("zero memory size", ["run", "replay", "--set", "mem_size=0"], "mem_size must be > 0"),
    ("negative memory size", ["run", "replay", "--set", "mem_size=-5"], "mem_size must be > 0"),
    ("no experience", ["run", "naive", "--n-experiences", "0"], "--n-experiences must be >= 1"),
    ("data root without the raw files", ["run", "naive", "--benchmark", "split_mnist", "--data-root", "/nonexistent"],
     "MNIST/raw"),
    ("unreachable MLflow server", ["run", "naive", "--tracking-uri", "http://127.0.0.1:9"],
     "cannot reach the MLflow tracking server"),
    ("malformed tracking URI", ["run", "naive", "--tracking-uri", "htp:/x"], "is not one MLflow can use"),
    ("tracking URI without a host", ["run", "naive", "--tracking-uri", "http:/x"], "has no host"),
    ("tracking store in a directory that cannot be written",
     ["run", "naive", "--tracking-uri", "sqlite:////proc/avalanche-ext/mlflow.db"], "cannot write the MLflow store"),
    ("retry budget that is not a number of seconds", ["run", "naive", "--tracking-retry-s", "nan"],
     "--tracking-retry-s must be a finite number of seconds >= 0"),
    ("negative retry budget", ["taxonomy", "--tracking-retry-s", "-1"], "--tracking-retry-s must be a finite"),
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
