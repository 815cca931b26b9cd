//! Vocabulary for `text_document`: common English words, most frequent first. Word `r`
//! (0-based rank) is drawn with weight 1/(r+1) (Zipf's law), which gives text a realistic
//! mix of very frequent and rare words, and so a realistic compression ratio.

pub(crate) const WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "as", "with",
    "he", "be", "at", "by", "his", "had", "not", "this", "are", "but", "from", "or", "have",
    "an", "they", "which", "one", "you", "were", "her", "all", "she", "there", "would",
    "their", "we", "him", "been", "has", "when", "who", "will", "more", "no", "if", "out",
    "so", "said", "what", "up", "its", "about", "into", "than", "them", "can", "only",
    "other", "new", "some", "could", "time", "these", "two", "may", "then", "do", "first",
    "any", "my", "now", "such", "like", "our", "over", "man", "me", "even", "most", "made",
    "after", "also", "did", "many", "before", "must", "through", "back", "years", "where",
    "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
    "people", "how", "too", "little", "state", "good", "very", "make", "world", "still",
    "own", "see", "men", "work", "long", "get", "here", "between", "both", "life", "being",
    "under", "never", "day", "same", "another", "know", "while", "last", "might", "us",
    "great", "old", "year", "off", "come", "since", "against", "go", "came", "right",
    "used", "take", "three", "house", "without", "again", "place", "around", "however",
    "home", "small", "found", "thought", "went", "say", "part", "once", "general", "high",
    "upon", "school", "every", "water", "left", "number", "hand", "course", "war",
    "until", "always", "away", "something", "fact", "though", "less", "public", "put",
    "think", "almost", "enough", "took", "night", "system", "interest", "river",
    "mountain", "garden", "letter", "morning", "question", "village", "journey", "window",
    "history", "silence", "measure", "harbour", "engine", "lantern", "meadow", "storage",
    "record", "library", "winter", "summer", "island", "market", "station", "voice",
    "story", "light", "stone", "field", "forest", "bridge", "window", "ocean", "valley",
    "careful", "quiet", "bright", "ancient", "distant", "gentle", "hollow", "narrow",
    "patient", "sudden", "curious", "remarkable", "ordinary", "scattered", "familiar",
];
