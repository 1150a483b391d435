use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn spec(id: &str, keys: &[char], ru: &[&str], en: &[&str]) -> CategorySpec {
    let mut phrases = BTreeMap::new();
    phrases.insert(Lang::Ru, ru.iter().map(|s| (*s).to_owned()).collect());
    phrases.insert(Lang::En, en.iter().map(|s| (*s).to_owned()).collect());
    CategorySpec {
        id: id.to_owned(),
        keys: keys.to_vec(),
        phrases,
    }
}

fn classifier() -> Classifier {
    Classifier::new(&[
        spec(
            "manager_call",
            &['1', '0'],
            &["менеджер", "живой человек"],
            &["manager", "real person"],
        ),
        spec(
            "send_details",
            &['2'],
            &["интересно, расскажите", "пришлите на почту"],
            &["send me the details", "email"],
        ),
        spec(
            "business_not_now",
            &['3'],
            &["не сейчас", "перезвоните позже"],
            &["not now", "call me back later"],
        ),
        spec(
            "not_interested",
            &['4'],
            &["не интересно", "нет"],
            &["not interested", "no"],
        ),
        spec(
            "opt_out",
            &['9'],
            &["не звоните", "удалите мой номер"],
            &["don't call me", "remove my number"],
        ),
    ])
}

fn best(c: &Classifier, lang: Lang, text: &str) -> Option<String> {
    c.classify(lang, text)
        .filter(|m| m.score >= DEFAULT_THRESHOLD)
        .map(|m| m.category)
}

#[test]
fn negation_separates_categories() {
    let c = classifier();
    assert_eq!(
        best(&c, Lang::Ru, "мне не интересно").as_deref(),
        Some("not_interested")
    );
    assert_eq!(
        best(&c, Lang::Ru, "интересно, расскажите подробнее").as_deref(),
        Some("send_details")
    );
    assert_eq!(
        best(&c, Lang::Ru, "больше не звоните").as_deref(),
        Some("opt_out")
    );
    assert_eq!(best(&c, Lang::Ru, "звоните").as_deref(), None);
    assert_eq!(
        best(&c, Lang::Ru, "ну не сейчас").as_deref(),
        Some("business_not_now")
    );
    assert_eq!(
        best(&c, Lang::En, "please don't call me").as_deref(),
        Some("opt_out")
    );
    assert_eq!(
        best(&c, Lang::En, "not now, sorry").as_deref(),
        Some("business_not_now")
    );
    assert_eq!(
        best(&c, Lang::En, "I'm not interested").as_deref(),
        Some("not_interested")
    );
    assert_eq!(best(&c, Lang::En, "interested").as_deref(), None);
}

#[test]
fn keys_spoken_as_numbers() {
    let c = classifier();
    assert_eq!(
        best(&c, Lang::Ru, "нажму два").as_deref(),
        Some("send_details")
    );
    assert_eq!(best(&c, Lang::Ru, "ноль").as_deref(), Some("manager_call"));
    assert_eq!(
        best(&c, Lang::En, "option two").as_deref(),
        Some("send_details")
    );
    assert_eq!(best(&c, Lang::En, "9").as_deref(), Some("opt_out"));
    // A quantity is not a key.
    assert_eq!(best(&c, Lang::Ru, "через два дня"), None);
}

#[test]
fn fuzzy_is_weaker_than_exact() {
    let c = classifier();
    let exact = c.classify(Lang::Ru, "менеджер").unwrap();
    let fuzzy = c.classify(Lang::Ru, "менаджер").unwrap();
    assert_eq!(fuzzy.category, "manager_call");
    assert!(fuzzy.score < exact.score, "{fuzzy:?} vs {exact:?}");
    assert!(fuzzy.score >= DEFAULT_THRESHOLD);
}

#[test]
fn detailed_has_runner_up_and_tokens() {
    let c = classifier();
    let d = c.classify_detailed(Lang::Ru, "нет, перезвоните позже");
    assert_eq!(d.best.as_ref().unwrap().category, "business_not_now");
    assert_eq!(d.runner_up.as_ref().unwrap().category, "not_interested");
    assert_eq!(d.tokens, ["нет", "перезвон", "позж"]);
    assert!(d.scores.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn no_match_is_none() {
    let c = classifier();
    assert_eq!(c.classify(Lang::Ru, "какая сегодня погода"), None);
    assert_eq!(
        c.classify(Lang::Uk, "менеджер"),
        None,
        "no uk phrases, no uk digits used"
    );
    assert_eq!(Classifier::new(&[]).classify(Lang::En, "manager"), None);
}

#[test]
fn built_in_entities() {
    let mut phrases = BTreeMap::new();
    phrases.insert(Lang::Ru, vec!["@time".to_owned(), "перезвоните".to_owned()]);
    phrases.insert(Lang::En, vec!["@time".to_owned()]);
    let later = CategorySpec {
        id: "later".to_owned(),
        keys: vec![],
        phrases,
    };
    let mut phrases = BTreeMap::new();
    phrases.insert(Lang::Ru, vec!["@negative".to_owned()]);
    phrases.insert(Lang::En, vec!["@negative".to_owned()]);
    let bad = CategorySpec {
        id: "bad".to_owned(),
        keys: vec![],
        phrases,
    };
    let c = Classifier::new(&[later, bad]);
    assert_eq!(c.skipped_phrases(), []);
    assert_eq!(
        best(&c, Lang::Ru, "давайте в понедельник").as_deref(),
        Some("later")
    );
    assert_eq!(best(&c, Lang::Ru, "ну, осенью").as_deref(), Some("later"));
    assert_eq!(
        best(&c, Lang::En, "maybe next spring").as_deref(),
        Some("later")
    );
    assert_eq!(
        best(&c, Lang::Ru, "доставка опаздывает").as_deref(),
        Some("bad")
    );
    assert_eq!(best(&c, Lang::Ru, "не плохо"), None, "negated");
    assert_eq!(
        best(&c, Lang::En, "your staff were rude").as_deref(),
        Some("bad")
    );
    assert_eq!(
        best(&c, Lang::Ru, "time"),
        None,
        "the entity name is not a word"
    );
    assert_eq!(best(&c, Lang::Ru, "какая сегодня погода"), None);
}

#[test]
fn function_word_phrases() {
    let mut phrases = BTreeMap::new();
    phrases.insert(
        Lang::Ru,
        vec![
            "у нас уже есть".to_owned(),
            "не для нас".to_owned(),
            "и в".to_owned(),
        ],
    );
    let c = Classifier::new(&[CategorySpec {
        id: "not_interested".to_owned(),
        keys: vec![],
        phrases,
    }]);
    assert_eq!(
        c.skipped_phrases().len(),
        0,
        "kept as function-word phrases"
    );
    assert_eq!(
        best(&c, Lang::Ru, "ну, у нас уже есть").as_deref(),
        Some("not_interested")
    );
    assert_eq!(
        best(&c, Lang::Ru, "это не для нас").as_deref(),
        Some("not_interested")
    );
    assert_eq!(best(&c, Lang::Ru, "это для нас"), None, "negation counts");
    assert_eq!(best(&c, Lang::Ru, "у нас есть"), None, "whole phrase only");
    let mut phrases = BTreeMap::new();
    phrases.insert(Lang::En, vec!["".to_owned(), "...".to_owned()]);
    let c = Classifier::new(&[CategorySpec {
        id: "x".to_owned(),
        keys: vec![],
        phrases,
    }]);
    assert_eq!(c.skipped_phrases().len(), 2);
}

#[test]
fn odd_inputs_do_not_panic() {
    let c = classifier();
    let long = "не звоните мне больше пожалуйста ".repeat(400);
    let odd = [
        "",
        " ",
        "\n\t",
        "🙂",
        "🙂🙂🙂 👍",
        "''''",
        "----",
        "- - -",
        "ёЁ",
        "\u{0}",
        "\u{200b}",
        "123456789",
        "1 2 3 4 5 6 7 8 9 0",
        "не не не не",
        "нет нет нет",
        "not not",
        "İstanbul ǅ ß",
        "ﬁ ﬂ",
        "e-",
        "-e",
        "'t",
        "n't",
        "don'",
        "a'b'c",
        "ʼ’‘",
        long.as_str(),
    ];
    for lang in Lang::ALL {
        for text in odd {
            let d = c.classify_detailed(lang, text);
            for m in &d.scores {
                assert!((0.0..=1.0).contains(&m.score), "{text:?}: {m:?}");
            }
            assert_eq!(c.classify_detailed(lang, text), d, "deterministic");
        }
    }
}

static SHARED: std::sync::LazyLock<Classifier> = std::sync::LazyLock::new(classifier);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_text_scores_in_range(text in "\\PC{0,200}", pick in 0usize..3) {
        let c = &*SHARED;
        let lang = Lang::ALL[pick];
        if let Some(m) = c.classify(lang, &text) {
            prop_assert!((0.0..=1.0).contains(&m.score));
        }
    }

    #[test]
    fn cyrillic_words_score_in_range(words in proptest::collection::vec("[а-яёіїєґ'-]{0,12}", 0..30)) {
        let c = &*SHARED;
        let text = words.join(" ");
        for lang in Lang::ALL {
            if let Some(m) = c.classify(lang, &text) {
                prop_assert!((0.0..=1.0).contains(&m.score));
            }
        }
    }
}
