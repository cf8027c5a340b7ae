"""goldrush-operator: reconciles GoldRushPipeline objects to the GoldRush Pipeline REST API."""

__version__ = "0.1.0"
