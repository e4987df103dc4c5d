"""Parameter shapes of real models, for benchmarks that need a realistic mix of tensor sizes
without downloading the model."""


def minilm_l6_shapes():
    """(name, shape) of the 103 float32 parameters of all-MiniLM-L6-v2 (sentence-transformers,
    22.7M weights), in the order of its model.safetensors."""
    d, ff = 384, 1536
    shapes = [
        ("embeddings.LayerNorm.bias", (d,)),
        ("embeddings.LayerNorm.weight", (d,)),
        ("embeddings.position_embeddings.weight", (512, d)),
        ("embeddings.token_type_embeddings.weight", (2, d)),
        ("embeddings.word_embeddings.weight", (30522, d)),
    ]
    for layer in range(6):
        prefix = f"encoder.layer.{layer}."
        shapes += [
            (prefix + "attention.output.LayerNorm.bias", (d,)),
            (prefix + "attention.output.LayerNorm.weight", (d,)),
            (prefix + "attention.output.dense.bias", (d,)),
            (prefix + "attention.output.dense.weight", (d, d)),
        ]
        for proj in ("key", "query", "value"):
            shapes += [
                (prefix + f"attention.self.{proj}.bias", (d,)),
                (prefix + f"attention.self.{proj}.weight", (d, d)),
            ]
        shapes += [
            (prefix + "intermediate.dense.bias", (ff,)),
            (prefix + "intermediate.dense.weight", (ff, d)),
            (prefix + "output.LayerNorm.bias", (d,)),
            (prefix + "output.LayerNorm.weight", (d,)),
            (prefix + "output.dense.bias", (d,)),
            (prefix + "output.dense.weight", (d, ff)),
        ]
    shapes += [("pooler.dense.bias", (d,)), ("pooler.dense.weight", (d, d))]
    return shapes
