"""Where articles come from: corpus files, web pages fetched safely, and their split into sentences and passages."""
