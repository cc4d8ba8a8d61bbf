# inference-1: a run_speech_recognition_ctc.py command of optimum-habana's examples/speech-recognition/README.md
# (huggingface/optimum-habana at 1d8504c, 2026-01-14), verbatim: ctc-tui import-command must take it.
PT_HPU_LAZY_MODE=1 python run_speech_recognition_ctc.py \
    --dataset_name="librispeech_asr" \
    --model_name_or_path="facebook/wav2vec2-large-lv60" \
    --dataset_config_name="clean" \
    --train_split_name="train.100" \
    --eval_split_name="validation" \
    --output_dir="/tmp/wav2vec2-librispeech-clean-100h-demo-dist" \
    --preprocessing_num_workers="64" \
    --dataloader_num_workers 8 \
    --overwrite_output_dir \
    --text_column_name="text" \
    --chars_to_ignore '",?.!-;:“%‘”' \
    --do_eval \
    --use_habana \
    --use_lazy_mode \
    --gaudi_config_name="Habana/wav2vec2" \
    --sdp_on_bf16 \
    --bf16 \
    --use_hpu_graphs_for_inference \
    --trust_remote_code True
