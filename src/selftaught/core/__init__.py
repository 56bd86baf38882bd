"""The plumbing every stage imports: typed params (config), errors, JSONL and atomic writes (io), the stage
runner, path and checkpoint safety, record schemas, progress bars and the shapes of the metrics files. A
change here reruns every stage (dvc.yaml declares this folder once per stage)."""
