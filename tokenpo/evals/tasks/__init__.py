"""lm-eval task configs: the official definitions, with the data source and code scorer redirected."""

from tokenpo.evals.tasks.configs import TaskConfigs, write_task_configs

__all__ = ["TaskConfigs", "write_task_configs"]
