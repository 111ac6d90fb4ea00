"""The `hf-tinylm` command line.

    hf-tinylm upload FOLDER REPO_ID [--private] [--create-pr] [--commit-message MSG] [--token TOKEN] [--endpoint URL]

uploads a saved model folder, as is, to a Hub repository after checking it is complete (`hf_tinylm.hub.check_and_upload`).
"""

import argparse

from .hub import check_and_upload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hf-tinylm", description="Tools for hf_tinylm models.")
    commands = parser.add_subparsers(dest="command", required=True)
    upload = commands.add_parser("upload", help="Upload a saved model folder to a Hub repository, as is.")
    upload.add_argument("folder", help="a folder written by save_pretrained (or train.py)")
    upload.add_argument("repo_id", help="the Hub repository, e.g. 'user/tiny-translator'; created if needed")
    upload.add_argument("--private", action="store_true", help="create the repository private")
    upload.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    upload.add_argument("--commit-message", default="Upload hf_tinylm model")
    upload.add_argument("--token", help="Hub token (default: HF_TOKEN or the stored login)")
    upload.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    args = parser.parse_args(argv)

    try:
        commit = check_and_upload(
            args.folder,
            args.repo_id,
            token=args.token,
            private=args.private or None,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
            endpoint=args.endpoint,
        )
    except ValueError as error:  # an incomplete folder: say what is missing, without a traceback
        parser.exit(1, f"hf-tinylm upload: {error}\n")
    print(commit.pr_url or commit.commit_url)


if __name__ == "__main__":
    main()
