"""A small English stop-word list: words that never make a keyword on their own."""

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just let me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these they this those
    through to too under until up upon us very was we were what when where which while who whom why will
    with would you your yours yourself yourselves said says say told new one two also like get got
    s t don't can't won't it's he's she's they're we're i'm isn't wasn't aren't weren't has hasn't
    would've could've may might must shall mr mrs ms""".split()
)
