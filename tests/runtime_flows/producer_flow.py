"""Registers one data and one model instance per run (project name from FLOWPOLICY_PROJECT)."""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow


class ProducerFlow(ProjectFlow):
    """Train a toy model and register it with its features."""

    score = Parameter("score", type=float, default=0.9)

    @step
    def start(self):
        """Build the artifacts and register them."""
        self.features = {"amount": [1.0, 2.0, 3.0], "score": self.score}
        self.model = {"weights": [0.5, 0.25], "score": self.score}
        self.prj.register_data("demo_features", "features", annotations={"n_rows": 3})
        self.prj.register_model(
            "demo_model", "model",
            annotations={"f1_score": self.score, "artifact": "model"},
            tags={"framework": "toy"}, description="toy model",
        )
        try:
            self.prj.register_model("demo_model", "not_an_attribute")
            self.missing_attribute_raised = False
        except AttributeError:
            self.missing_attribute_raised = True
        self.registered_by = f"{self.prj.project}/{self.prj.write_branch}"
        self.next(self.end)

    @step
    def end(self):
        """Nothing left to do."""


if __name__ == "__main__":
    ProducerFlow()
