//! HD geometry against the reference image processor (every fixture image, 4 and 16 crops) and
//! the worked examples of the reference notes.

use phi3v_vision::{HdLayout, VisionError};

#[test]
fn layout_matches_reference_for_every_fixture_image() {
    let golden = phi3v_fixtures::preprocess();
    assert!(golden.entries.len() >= 26);
    for e in &golden.entries {
        let [w, h] = e.source_size_wh;
        let got = HdLayout::new(w, h, e.num_crops);
        match (&e.reference_error, got) {
            (Some(_), Err(VisionError::Collapsed { .. })) => {}
            (None, Ok(layout)) => {
                let [gh, gw] = e.image_size_hw.unwrap();
                assert_eq!(layout.size_hw, (gh, gw), "{}: image_sizes", e.key);
                assert_eq!(Some(layout.num_img_tokens()), e.num_img_tokens, "{}: num_img_tokens", e.key);
                let crops = e.pixel_values_shape.unwrap()[0];
                assert_eq!(crops, e.num_crops + 1, "{}: stack is padded to num_crops + 1", e.key);
                assert!(layout.rows() * layout.cols() <= e.num_crops, "{}", e.key);
            }
            (reference, ours) => panic!("{}: reference {reference:?}, ours {ours:?}", e.key),
        }
    }
}

#[test]
fn worked_examples() {
    // (W, H, num_crops) -> (resized W×H in the working frame, pad top/bottom, final H×W, tokens)
    let cases = [
        ((336, 336, 16), ((1344, 1344), (0, 0), (1344, 1344), 2509)),
        ((336, 336, 4), ((672, 672), (0, 0), (672, 672), 757)),
        ((640, 480, 16), ((1344, 1008), (0, 0), (1008, 1344), 1921)),
        ((480, 640, 16), ((1344, 1008), (0, 0), (1344, 1008), 1933)),
        ((1200, 675, 16), ((1680, 945), (31, 32), (1008, 1680), 2353)),
        ((1200, 675, 4), ((672, 378), (147, 147), (672, 672), 757)),
        ((1080, 1920, 16), ((1680, 945), (31, 32), (1680, 1008), 2377)),
        ((100, 1000, 4), ((1344, 134), (101, 101), (1344, 336), 781)),
        ((50, 8000, 16), ((5376, 33), (151, 152), (5376, 336), 2653)),
    ];
    for ((w, h, n), (resized, pad, size, tokens)) in cases {
        let l = HdLayout::new(w, h, n).unwrap();
        assert_eq!(l.transposed, w < h);
        assert_eq!(l.resized_wh, resized, "{w}×{h}@{n}");
        assert_eq!((l.pad_top, l.pad_bottom), pad, "{w}×{h}@{n}");
        assert_eq!(l.size_hw, size, "{w}×{h}@{n}");
        assert_eq!(l.num_img_tokens(), tokens, "{w}×{h}@{n}");
    }
}

#[test]
fn degenerate_inputs_are_errors() {
    assert_eq!(HdLayout::new(0, 10, 4), Err(VisionError::EmptyImage { width: 0, height: 10 }));
    assert_eq!(HdLayout::new(10, 0, 4), Err(VisionError::EmptyImage { width: 10, height: 0 }));
    assert_eq!(HdLayout::new(10, 10, 0), Err(VisionError::NumCrops(0)));
    assert_eq!(HdLayout::new(10, 10, 1025), Err(VisionError::NumCrops(1025)));
    let err = HdLayout::new(10000, 1, 16).unwrap_err();
    assert!(matches!(err, VisionError::Collapsed { resized_width: 5376, .. }), "{err}");
    assert!(err.to_string().contains("10000×1"), "{err}");
    assert!(matches!(HdLayout::new(1, 10000, 4), Err(VisionError::Collapsed { .. })));
}
