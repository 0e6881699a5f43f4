"""Times predict_batches against the anchor, model.predict once per incoming batch, on 512 uint8
images through a small MobileNetV2 body; prints seconds and the ratio (not a test)."""

from __future__ import annotations

import time

import keras
import numpy as np

from headstart.kernels.engine.inference import predict_batches

IMAGES = 512
BATCH_SIZE = 32
# Uneven incoming lengths, as shards and upload chunks arrive, cycling until 512 rows.
INCOMING = (24, 40, 32, 17, 47)


def body() -> keras.Model:
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    return keras.Sequential(
        [keras.Input((224, 224, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1), mobilenet]
    )


def incoming(images: np.ndarray) -> list[np.ndarray]:
    batches, start, i = [], 0, 0
    while start < len(images):
        size = INCOMING[i % len(INCOMING)]
        batches.append(images[start : start + size])
        start, i = start + size, i + 1
    return batches


def main() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(IMAGES, 224, 224, 3), dtype=np.uint8)
    batches = incoming(images)
    # Separate but identical models, so that neither run reuses the other's traced function.
    keras.utils.set_random_seed(0)
    anchor_model = body()
    keras.utils.set_random_seed(0)
    model = body()

    start = time.perf_counter()
    anchor = np.concatenate([anchor_model.predict(batch, verbose=0) for batch in batches])
    anchor_s = time.perf_counter() - start

    start = time.perf_counter()
    ours = predict_batches(model, batches, batch_size=BATCH_SIZE)
    ours_s = time.perf_counter() - start

    print(f"{IMAGES} images, {len(batches)} incoming batches of {INCOMING} rows, batch_size {BATCH_SIZE}")
    print(f"model.predict per incoming batch: {anchor_s:.2f} s ({IMAGES / anchor_s:.1f} images/s)")
    print(f"predict_batches:                  {ours_s:.2f} s ({IMAGES / ours_s:.1f} images/s)")
    print(f"ratio anchor/predict_batches:     {anchor_s / ours_s:.2f}x")
    print(f"max abs difference:               {np.abs(anchor - ours).max():.2e}")


if __name__ == "__main__":
    main()
