"""ExStream in the streaming protocol on split_digits: every sample seen once, 10 at a time."""

import torch
from avalanche.training import Naive
from avalanche.training.plugins import ReplayPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.evaluation import stream_accuracy
from avalanche_ext.benchmarks.online import online_train_stream, with_boundaries
from avalanche_ext.models import build_network
from avalanche_ext.storage import ExStreamBuffer



torch.set_num_threads(1)
torch.manual_seed(0)
stream = build_benchmark("split_digits", "class", seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=200)

# at most 5 stored inputs per class (50 in all); a full class merges its two nearest points
# ("nearest" by Ward's criterion: the merge that adds least to the within-cluster sum of squares)
buffer = ExStreamBuffer(max_size=50, per_class=5, linkage="ward")
replay = ReplayPlugin(mem_size=50, storage_policy=buffer)
strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=3e-3),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=10, train_epochs=1,
                 plugins=[replay], evaluator=None)

done = 0
for exp, ends_experience in with_boundaries(online_train_stream(stream, experience_size=10)):
    strategy.train(exp)  # one step on 10 new samples plus 10 replayed from the buffer
    if ends_experience:
        done += 1
        print(f"after experience {done}: accuracy on all classes {stream_accuracy(model, stream.test_stream):.3f}")

print(f"stored vectors: {len(buffer)} (max 50); samples each class's points stand for:")
print({label: n for (_, label), n in sorted(buffer.counts().items())})
