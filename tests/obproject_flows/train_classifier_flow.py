"""Trains (here: registers) an externally stored classifier on its branch and tells the
project, as the Outerbounds docs' training flows do. Written for obproject."""

from metaflow import Parameter, step
from obproject import ProjectFlow


class TrainClassifierFlow(ProjectFlow):
    """Register a classifier checkpoint and announce it."""

    accuracy = Parameter("accuracy", type=float, default=0.93)

    @step
    def start(self):
        """Register the checkpoint with its evaluation."""
        self.prj.register_external_model(
            "classifier", blobs=[f"s3://models/classifier/{self.accuracy}/"],
            kind="checkpoint_dir", annotations={"accuracy": self.accuracy},
            tags={"framework": "sklearn"})
        self.prj.publish_event("classifier_trained", {"accuracy": self.accuracy})
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    TrainClassifierFlow()
