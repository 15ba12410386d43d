"""Names in a training run folder that more than one package reads: the trainers write them, the model
cards (:mod:`tokenpo.cards`) read them. The rest of the layout is :mod:`tokenpo.trainers.runfolder`'s."""

ADAPTER = "adapter"  # RUN/final/adapter/: a LoRA run's adapter in peft's format, to publish on its own
# config.yaml: the data mixture a run trained on, per source its label, weight, available and drawn pairs
MIXTURE_RECORD = "data_mixture"
