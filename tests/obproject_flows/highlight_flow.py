"""A step highlight as the Outerbounds docs write one. Written for obproject."""

from metaflow import step
from obproject import ProjectFlow, highlight


class HighlightFlow(ProjectFlow):
    """Highlight the model quality of a run."""

    @highlight
    @step
    def start(self):
        """Set what the highlight shows."""
        self.highlight.set_title("Model quality")
        self.highlight.add_label("fraud")
        self.highlight.add_line("0.93", caption="accuracy")
        self.highlight.add_column(big="0.93", small="accuracy")
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    HighlightFlow()
