"""Long-form writing as a second kind of corpus: documents of paragraphs instead of messages.

    etl ingest prose PATH...      documents and paragraphs land (sources/prose.py reads them)
    etl build --corpus prose      fourth-wall removal, chunks, many-to-one pairs, splits by document
    etl train neutral             a base model's plain rewrite of each chunk, stored for the next build
"""
