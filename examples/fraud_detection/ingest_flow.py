"""Register a new batch of transactions: what a daily ingestion job does.

It registers the data asset ``fraud_features`` and trains nothing. A new instance of a
monitored data asset starts its drift monitor, which compares it with the batch before it;
with ``--shift`` the distributions move, the monitor publishes ``retrain_required`` and the
policy's trigger retrains the model on this batch (``train_flow.py --train_on``).

    python ingest_flow.py run --seed 9 --shift 1.0
"""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow
from train_flow import make_transactions


class TransactionIngestFlow(ProjectFlow):
    """Register one batch of synthetic transactions as ``fraud_features``."""

    seed = Parameter("seed", default=9, type=int, help="random seed of the synthetic data")
    n_rows = Parameter("n_rows", default=20000, type=int, help="transactions to generate")
    shift = Parameter(
        "shift", default=0.0, type=float, help="distribution shift of the features (0 = none)"
    )

    @step
    def start(self):
        """Generate the transactions and register them."""
        self.features = make_transactions(self.n_rows, self.seed, self.shift)
        self.prj.register_data(
            "fraud_features",
            "features",
            annotations={
                "n_rows": self.n_rows,
                "source": f"synthetic transactions (seed={self.seed}, shift={self.shift})",
                "fraud_rate": round(float(self.features["is_fraud"].mean()), 4),
            },
        )
        self.next(self.end)

    @step
    def end(self):
        """Say what was registered."""
        print(f"fraud_features: {self.n_rows} transactions (seed={self.seed}, shift={self.shift})")


if __name__ == "__main__":
    TransactionIngestFlow()
