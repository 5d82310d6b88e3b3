"""Registers its model once per epoch inside the training loop (what FPL007 and the run-time
registration guard are about), and a summary once after it."""

from metaflow import Parameter, step

from flowpolicy import ProjectFlow


class EpochRegisteringFlow(ProjectFlow):
    """Train for ``epochs`` epochs, registering ``epoch_model`` every epoch."""

    epochs = Parameter("epochs", type=int, default=5)

    @step
    def start(self):
        """The anti-pattern: one registered version per epoch."""
        self.model = {"weights": [0.0]}
        for epoch in range(self.epochs):
            self.model = {"weights": [0.1 * (epoch + 1)]}
            self.prj.register_model("epoch_model", "model", annotations={"epoch": epoch})
        self.prj.register_data("training_summary", "model")
        self.next(self.end)

    @step
    def end(self):
        """Nothing left to do."""


if __name__ == "__main__":
    EpochRegisteringFlow()
