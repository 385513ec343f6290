"""The local S3-compatible store: ``rclone serve s3`` behind a gateway that notifies uploads."""
