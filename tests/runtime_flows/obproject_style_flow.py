"""A training flow written for Outerbounds' obproject, exactly as its users write them.

The runtime tests copy this file, change only the import line to ``from flowpolicy import
ProjectFlow``, and run it: the project name comes from obproject.toml in the working
directory, the branch from Metaflow's @project branch.
"""

from metaflow import step
from obproject import ProjectFlow


class FraudTrainingFlow(ProjectFlow):
    """Register transactions, train on them, compare with the previous model."""

    @step
    def start(self):
        """Register this run's transactions as a data asset."""
        self.transactions = [0.1, 0.4, 0.35, 0.8]
        self.prj.register_data(
            "transactions", "transactions",
            annotations={"n_rows": len(self.transactions), "source": "synthetic"},
            tags={"stage": "raw"},
        )
        self.next(self.train)

    @step
    def train(self):
        """Train on the latest transactions and register the model."""
        data = self.prj.get_data("transactions")
        try:
            previous = list(self.prj.list_model_instances("fraud_classifier"))
        except Exception:
            previous = []
        self.model = {"threshold": sum(data) / len(data), "generation": len(previous) + 1}
        self.f1_score = 0.8 + 0.05 * len(previous)
        self.prj.register_model(
            "fraud_classifier", "model",
            annotations={"f1_score": self.f1_score, "generation": len(previous) + 1},
            tags={"framework": "toy"},
        )
        self.next(self.end)

    @step
    def end(self):
        """Read back what was registered, the way obproject users do."""
        ref = self.prj.asset.consume_model_asset("fraud_classifier")
        self.latest_id = ref["id"]
        self.latest_f1 = float(ref["model_properties"]["annotations"]["f1_score"])
        self.model_kind = ref["model_properties"]["model_kind"]
        self.generations = [int(i.annotations["generation"])
                            for i in self.prj.list_model_instances("fraud_classifier")]
        self.loaded = self.prj.get_model("fraud_classifier")
        self.scope = [self.prj.project, self.prj.read_branch, self.prj.write_branch]
        self.prj.evals.log(f"f1_score of {self.latest_id}: {self.latest_f1}")
        self.prj.safe_publish_event("model_trained", payload={"id": self.latest_id})


if __name__ == "__main__":
    FraudTrainingFlow()
