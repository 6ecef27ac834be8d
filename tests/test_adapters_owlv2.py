"""OWLv2 adapter (backends/owlv2_adapter.py): post-processing of Owlv2ForObjectDetection outputs
(logits (1, Q, C), pred_boxes (1, Q, 4) cxcywh relative to the bottom/right-padded square image)
and per-label NMS, with hand-computed boxes."""
import numpy as np
import pytest
import torch

from dexman_perception.core.backends import owlv2_adapter as ow


def test_postprocess_uses_the_padded_square():
    logits = torch.tensor([[[2.0, -1.0], [-3.0, -2.0], [-1.0, 0.5]]])      # (1, Q=3, C=2)
    boxes = torch.tensor([[[0.5, 0.25, 0.25, 0.125],
                           [0.1, 0.1, 0.05, 0.05],
                           [0.5, 0.75, 0.5, 0.2]]])
    dets = ow.owlv2_postprocess(logits, boxes, (480, 640), threshold=0.1)
    assert [d[2] for d in dets] == [0, 1, 1]                                  # sorted by score
    s = [d[1] for d in dets]
    assert s == pytest.approx([1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(2.0))])
    # side = max(480, 640) = 640: (0.375, 0.1875, 0.625, 0.3125) * 640
    np.testing.assert_allclose(dets[0][0], [240, 120, 400, 200])
    # box reaching into the grey padding below the image: y (0.65 .. 0.85) * 640 -> clipped at 480
    np.testing.assert_allclose(dets[1][0], [160, 416, 480, 480])
    assert len(ow.owlv2_postprocess(logits[0], boxes[0], (480, 640), threshold=0.5)) == 2
    with pytest.raises(ValueError):
        ow.owlv2_postprocess(logits, boxes[:, :2], (480, 640))


def test_box_iou_and_nms():
    assert ow.box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]]))[0, 0] == pytest.approx(1 / 7)
    dets = [(np.array([0, 0, 10, 10.0]), 0.9, 0), (np.array([1, 1, 10, 10.0]), 0.8, 0),
            (np.array([1, 1, 10, 10.0]), 0.7, 1), (np.array([50, 50, 60, 60.0]), 0.6, 0)]
    kept = ow.nms_per_label(dets, 0.3)
    assert [(d[1], d[2]) for d in kept] == [(0.9, 0), (0.7, 1), (0.6, 0)]


def tiny_random_owlv2():
    """A randomly initialised, tiny OWLv2 (64 px, one layer) and a processor with a toy CLIP
    vocabulary: no download, runs in about a second on CPU. Its detections are meaningless."""
    tf = pytest.importorskip('transformers', reason='optional: pip install transformers==5.24.0')
    letters = 'abcdefghijklmnopqrstuvwxyz'
    toks = ['!', '<|endoftext|>', '<|startoftext|>'] + list(letters) + [c + '</w>' for c in letters]
    vocab = {t: i for i, t in enumerate(toks)}
    try:
        tok = tf.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)            # 5.x
    except TypeError:                                                                   # 4.x
        import json
        import tempfile
        d = tempfile.mkdtemp()
        json.dump(vocab, open(f'{d}/vocab.json', 'w'))
        open(f'{d}/merges.txt', 'w').write('#version: 0.2\n')
        tok = tf.CLIPTokenizer(f'{d}/vocab.json', f'{d}/merges.txt', model_max_length=16)
    proc = tf.Owlv2Processor(image_processor=tf.Owlv2ImageProcessor(size={'height': 64, 'width': 64}),
                             tokenizer=tok)
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    cfg = tf.Owlv2Config(text_config=dict(vocab_size=len(toks), max_position_embeddings=16,
                                          bos_token_id=2, eos_token_id=1, pad_token_id=1, **small),
                         vision_config=dict(image_size=64, patch_size=16, **small), projection_dim=32)
    torch.manual_seed(0)
    return proc, tf.Owlv2ForObjectDetection(cfg).eval()


@pytest.mark.filterwarnings('ignore')
def test_detect_with_a_real_tiny_owlv2_matches_library_postprocessing():
    proc, model = tiny_random_owlv2()
    det = object.__new__(ow.Owlv2Detector)
    det.processor, det.model, det.device, det.threshold, det.nms_threshold = proc, model, 'cpu', 0.0, None
    rgb = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)   # not square
    texts = ['table', 'a mug']
    dets = det.detect(rgb, texts)
    inputs = proc(text=[texts], images=rgb, return_tensors='pt')
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape == (1, 16, 2) and out.pred_boxes.shape == (1, 16, 4)   # 4x4 patches
    ref = proc.post_process_grounded_object_detection(out, threshold=0.0, target_sizes=[(30, 50)])[0]
    assert len(dets) == len(ref['scores']) == 16
    order = np.argsort(-ref['scores'].numpy(), kind='stable')
    ref_boxes = ref['boxes'].numpy()[order]
    ref_boxes[:, [0, 2]] = ref_boxes[:, [0, 2]].clip(0, 50)
    ref_boxes[:, [1, 3]] = ref_boxes[:, [1, 3]].clip(0, 30)
    np.testing.assert_allclose(np.stack([d[0] for d in dets]), ref_boxes, atol=1e-4)
    np.testing.assert_allclose([d[1] for d in dets], ref['scores'].numpy()[order], atol=1e-6)
    assert [d[2] for d in dets] == [texts[i] for i in ref['labels'].numpy()[order]]
