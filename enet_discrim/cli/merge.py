"""`enet-discrim merge`: converted record folders as one `--srcdir` (`enet_discrim.data.merge`)."""

from enet_discrim.cli import support


def main(argv):
    """`merge`: flags -> exit status."""
    from enet_discrim.data.merge import merge

    parser = support.ArgumentParser(prog="enet-discrim merge",
                                    description="Merge converted record folders into one.")
    parser.add_argument("--outdir", required=True, help="the merged folder (new or empty)")
    parser.add_argument("sources", nargs="+", help="record folders (converters' outputs)")
    parser.add_argument("--copy", action="store_true", help="copy the shards instead of linking")
    args = parser.parse_args(argv)
    try:
        merged = merge(args.outdir, args.sources, copy=args.copy)
    except (ValueError, OSError) as error:
        return support.report_error(error)
    print(f"merged {len(args.sources)} folders: train {merged['counts']['train']}, val "
          f"{merged['counts']['val']} -> {args.outdir}")
    return support.EXIT_OK


def run(argv=None):
    """`python -m enet_discrim.data.merge`; returns the exit status."""
    return support.run_main(main, argv, tensorflow=True)
