"""Models and data that live outside Metaflow, registered, listed by tag and deleted the way
the Outerbounds docs show it. Written for obproject; the tests run it with the import
changed and, through the obproject stand-in, unchanged."""

from metaflow import step
from obproject import ProjectFlow
from obproject.assets import Asset


class ExternalAssetsFlow(ProjectFlow):
    """Register external models and data, inspect them, delete the training ones."""

    @step
    def start(self):
        """Register a Hugging Face model, a checkpoint directory and an S3 object."""
        self.prj.register_external_model(
            "base_llm", blobs=["meta-llama/Llama-3.1-8B-Instruct"], kind="huggingface",
            annotations={"context_length": 8192},
            tags={"model_type": "llm", "provider": "meta", "revision": 2})
        self.prj.register_external_model(
            "training_checkpoints", blobs=["s3://checkpoints/run-1/"], kind="checkpoint_dir",
            annotations={"best_epoch": 42, "best_loss": 0.123},
            tags={"framework": "pytorch", "status": "training"})
        self.prj.register_external_data(
            "raw_sales", blobs=["s3://data-lake/sales/2024-01-01.parquet"], kind="s3_object",
            annotations={"size_bytes": 1024000, "row_count": 50000},
            tags={"source": "sensor", "format": "parquet"})
        self.next(self.inspect)

    @step
    def inspect(self):
        """Read them back: responses, instances, tag-filtered listings."""
        ref = self.prj.asset.consume_model_asset("base_llm")
        self.base_llm = {"blobs": ref["model_properties"]["blobs"],
                         "kind": ref["model_properties"]["model_kind"],
                         "context_length": int(
                             ref["model_properties"]["annotations"]["context_length"])}
        latest = next(iter(self.prj.list_model_instances("training_checkpoints")))
        producer_kind, producer = latest.created_by
        self.checkpoint = {"id": latest.id, "blobs": latest.blobs, "kind": latest.asset_kind,
                           "producer_kind": producer_kind, "producer": producer,
                           "producer_by_index": latest.created_by[1],
                           "best_loss": float(latest.annotations["best_loss"])}
        asset = self.prj.asset
        self.by_tag = {
            "pytorch": [i["asset"]["id"] for i in
                        asset.list_model_assets(tags={"framework": "pytorch"})["items"]],
            "revision_str": [i["asset"]["id"] for i in
                             asset.list_model_assets(tags={"revision": "2"})["items"]],
            "revision_int": [i["asset"]["id"] for i in
                             asset.list_model_assets(tags={"revision": 2})["items"]],
            "sensor_data": [i["asset"]["id"] for i in
                            asset.list_data_assets(tags={"source": "sensor"})["items"]],
        }
        try:
            self.prj.get_model("base_llm")
            self.not_an_artifact = None
        except AttributeError as exc:
            self.not_an_artifact = str(exc)
        self.next(self.cleanup)

    @step
    def cleanup(self):
        """Delete every model tagged as still training, as a teardown script would."""
        asset = Asset(project=self.prj.project, branch=self.prj.write_branch)
        training = [i["asset"]["id"] for i in
                    asset.list_model_assets(tags={"status": "training"})["items"]]
        self.deleted = {name: asset.delete_model_asset(name)._asdict() for name in training}
        self.deleted_again = asset.delete_model_asset("training_checkpoints")._asdict()
        self.remaining = sorted(i["asset"]["id"] for i in asset.list_model_assets()["items"])
        self.spec = asset.get_flowproject_spec()
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    ExternalAssetsFlow()
