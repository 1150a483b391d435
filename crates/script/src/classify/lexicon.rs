//! Closed-class words per language: what the analyser drops, what negates, what only intensifies,
//! modal verbs folded to one lemma, spelled digits, and the words that introduce a DTMF choice.
//!
//! These are properties of the language, not of any category: category knowledge lives in the
//! script's phrases.

use std::collections::{HashMap, HashSet};

use crate::lang::Lang;

/// What a (normalised, unstemmed) word is to the analyser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum WordKind {
    /// Function word or filler: dropped (a pending negation skips over it).
    Stop,
    /// Conjunction that opens a new clause ("но", "but"): ends negation scope like a comma.
    Break,
    /// Negator ("не", "not", "never"): negates the next content word.
    Negator,
    /// "No" ("нет", "ні", "no"): negates the next content word in the same clause and, when it
    /// stands as an answer of its own, is kept as a token (with the language's lemma).
    Particle,
    /// Intensifier ("очень", "really"): dropped, but negation passes through it.
    Intensifier,
    /// Modal verb folded to a lemma ("хочу"/"хотел" → "хотеть"): kept, negated when in scope,
    /// and negation passes on to the next word as well ("не надо звонить").
    Modal(&'static str),
    /// Politeness / agreement word ("спасибо", "yes"): kept with a low weight, never negated,
    /// does not consume a pending negation.
    Generic,
    /// A spelled digit (cardinal or ordinal) or `*`/`#`.
    Digit(char),
}

/// A built-in class of words that a phrase can name as `@name`, like the system entities of
/// dialogue platforms: the operator writes "@time" instead of every way to say when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entity {
    /// `@time`: a day, part of day, date, month, season or period, or "later/next/soon"
    /// ("завтра", "в понедельник", "осенью", "через месяц", "next week"); not "today"/"now".
    Time,
    /// `@negative`: a word of negative evaluation ("плохо", "обманули", "опаздывает",
    /// "rude", "overpriced").
    Negative,
}

impl Entity {
    /// How phrases name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Entity::Time => "@time",
            Entity::Negative => "@negative",
        }
    }
}

/// The lemma a [`WordKind::Particle`] is emitted as.
pub(crate) fn particle_lemma(lang: Lang) -> &'static str {
    match lang {
        Lang::Ru => "нет",
        Lang::Uk => "ні",
        Lang::En => "no",
    }
}

/// Word lists of one language, looked up by the normalised surface form.
#[derive(Debug)]
pub(crate) struct Lexicon {
    words: HashMap<&'static str, WordKind>,
    key_context: &'static [&'static str],
    time_units: &'static [&'static str],
    /// Per entity: word prefixes and whole words.
    entities: Vec<(Entity, &'static [&'static str], HashSet<&'static str>)>,
}

impl Lexicon {
    pub(crate) fn new(lang: Lang) -> Lexicon {
        let mut words: HashMap<&'static str, WordKind> = HashMap::new();
        let lists = lists(lang);
        let mut put = |list: &'static str, kind: WordKind| {
            for w in list.split_whitespace() {
                words.insert(w, kind);
            }
        };
        put(lists.stop, WordKind::Stop);
        put(lists.breaks, WordKind::Break);
        put(lists.negators, WordKind::Negator);
        put(lists.particles, WordKind::Particle);
        put(lists.intensifiers, WordKind::Intensifier);
        put(lists.generic, WordKind::Generic);
        for (lemma, forms) in lists.modals {
            put(forms, WordKind::Modal(lemma));
        }
        for (digit, forms) in lists.digits {
            put(forms, WordKind::Digit(*digit));
        }
        let entities = lists
            .entities
            .iter()
            .map(|(e, prefixes, words)| (*e, *prefixes, words.split_whitespace().collect()))
            .collect();
        Lexicon {
            words,
            key_context: lists.key_context,
            time_units: lists.time_units,
            entities,
        }
    }

    /// The kind of a closed-class word, `None` for a content word.
    pub(crate) fn kind(&self, word: &str) -> Option<WordKind> {
        self.words.get(word).copied()
    }

    /// Whether `word` introduces a keyed choice ("нажму", "вариант", "press", "option").
    pub(crate) fn is_key_context(&self, word: &str) -> bool {
        self.key_context.iter().any(|p| word.starts_with(p))
    }

    /// The built-in entity a content word belongs to.
    pub(crate) fn entity(&self, word: &str) -> Option<Entity> {
        self.entities
            .iter()
            .find(|(_, prefixes, words)| {
                words.contains(word) || prefixes.iter().any(|p| word.starts_with(p))
            })
            .map(|e| e.0)
    }

    /// Whether `word` is a unit of time or count ("дня", "minutes", "раз"), which turns a
    /// preceding number into a quantity rather than a key ("через два дня").
    pub(crate) fn is_time_unit(&self, word: &str) -> bool {
        self.time_units.iter().any(|p| word.starts_with(p))
    }
}

struct Lists {
    stop: &'static str,
    breaks: &'static str,
    negators: &'static str,
    particles: &'static str,
    intensifiers: &'static str,
    generic: &'static str,
    modals: &'static [(&'static str, &'static str)],
    digits: &'static [(char, &'static str)],
    key_context: &'static [&'static str],
    time_units: &'static [&'static str],
    /// Per entity: word prefixes, and whole words (space-separated).
    entities: &'static [(Entity, &'static [&'static str], &'static str)],
}

fn lists(lang: Lang) -> Lists {
    match lang {
        Lang::Ru => Lists {
            stop: "я мне меня мной мы нам нас нами вы вам вас вами ты тебе тебя тобой он его ему им \
                   него нему ним она ее ей нее ней оно они их ими них это этот эта эти этого этому \
                   этим этом эту этой то тот та те того тому тем том ту той что чтобы чего чем как \
                   вот ну же ж ли бы б ведь и или либо в во на с со к ко у о об обо от по за из изо \
                   для до при про над под без через мой моя мое мою моего моей моих мои моим ваш \
                   ваша ваше вашу вашего вашей ваших ваши вашим наш наша наше нашу нашего нашей \
                   наших наши свой своя свое свою своего своей свои своих тут там здесь есть был \
                   была было были будет быть буду будем пожалуйста давайте давай можно пусть \
                   пускай так уже еще все просто короче типа слушайте слушай извините простите \
                   скажите кто кого кому кем какой какая какое какие где куда откуда нибудь \
                   э ээ эээ эм мм ммм хм ой ах ох алло",
            breaks: "а но однако зато хотя",
            negators: "не ни никогда",
            particles: "нет нету неа нее",
            intensifiers: "очень особо особенно совсем сильно слишком вообще совершенно абсолютно \
                           прям прямо настолько больше снова опять точно однозначно",
            generic: "да ага угу ок окей хорошо ладно спасибо благодарю конечно",
            modals: &[
                (
                    "хотеть",
                    "хочу хочешь хочет хотим хотите хотят хотел хотела хотели хотелось хочется",
                ),
                ("надо", "надо нужно нужен нужна нужны необходимо требуется"),
                ("мочь", "могу можем может можете могут мог могла могли"),
            ],
            digits: &[
                ('0', "ноль нуль нолик нулевой"),
                (
                    '1',
                    "один одна одно одну единица единицу единичка единичку первый первая первое \
                     первую первого",
                ),
                (
                    '2',
                    "два две двойка двойку двоечка двоечку второй вторая второе вторую второго",
                ),
                (
                    '3',
                    "три тройка тройку троечка троечку третий третья третье третью третьего",
                ),
                (
                    '4',
                    "четыре четверка четверку четверочку четвертый четвертая четвертое четвертую",
                ),
                (
                    '5',
                    "пять пятерка пятерку пятерочку пятый пятая пятое пятую",
                ),
                ('6', "шесть шестерка шестерку шестой шестая шестое шестую"),
                ('7', "семь семерка семерку седьмой седьмая седьмое седьмую"),
                (
                    '8',
                    "восемь восьмерка восьмерку восьмой восьмая восьмое восьмую",
                ),
                (
                    '9',
                    "девять девятка девятку девяточку девятый девятая девятое девятую",
                ),
                ('*', "звездочка звездочку звезда звездочкой"),
                ('#', "решетка решетку решеткой"),
            ],
            key_context: &[
                "нажм",
                "нажим",
                "нажа",
                "выбира",
                "выбер",
                "выбор",
                "вариант",
                "цифр",
                "кнопк",
                "клавиш",
                "пункт",
                "номер",
            ],
            time_units: &[
                "секунд",
                "сек",
                "минут",
                "момент",
                "час",
                "дн",
                "ден",
                "недел",
                "месяц",
                "год",
                "лет",
                "раз",
            ],
            entities: &[
                (
                    Entity::Time,
                    &[
                        "завтра",
                        "послезавтра",
                        "вечер",
                        "утр",
                        "понедельник",
                        "вторник",
                        "четверг",
                        "пятниц",
                        "суббот",
                        "воскресень",
                        "выходн",
                        "недел",
                        "месяц",
                        "месяч",
                        "полгод",
                        "квартал",
                        "осен",
                        "весн",
                        "зим",
                        "праздник",
                        "январ",
                        "феврал",
                        "март",
                        "апрел",
                        "июн",
                        "июл",
                        "август",
                        "сентябр",
                        "октябр",
                        "ноябр",
                        "декабр",
                        "следующ",
                        "позже",
                        "попозже",
                        "позднее",
                        "потом",
                        "скоро",
                    ],
                    "среду среда год года году лет летом лету мае мая",
                ),
                (
                    Entity::Negative,
                    &[
                        "плох",
                        "ужасн",
                        "ужас",
                        "отвратительн",
                        "кошмар",
                        "безобраз",
                        "хамств",
                        "хамя",
                        "хамит",
                        "груб",
                        "обман",
                        "разочарова",
                        "недовол",
                        "подвел",
                        "опаздыва",
                        "опозда",
                        "дороговат",
                        "некачествен",
                        "сломал",
                        "бесполезн",
                        "отстой",
                    ],
                    "дорого дорогие дорогая дорогой хам хамы",
                ),
            ],
        },
        Lang::Uk => Lists {
            stop: "я мені мене мною ми нам нас нами ви вам вас вами ти тобі тебе тобою він його \
                   йому ним нього вона її їй неї нею воно вони їх їм ними них це цей ця ці цього \
                   цьому цим цій цю то той те того тому тим ту що щоб чого чим як ось от ну же ж \
                   чи би б і й та або в у на з зі із зо к до о об від по за для при про над під \
                   без через мій моя моє мою мого моєї моїх мої моїм ваш ваша ваше вашу вашого \
                   вашої ваших ваші вашим наш наша наше нашу нашого нашої наших наші свій своя \
                   своє свою свого своєї свої своїх тут там є був була було були буде бути буду \
                   будемо будь ласка давайте давай можна хай нехай просто типу слухайте \
                   слухай вибачте скажіть все всі вже ще хто який яка яке які де куди звідки \
                   небудь е ее еее ем мм ммм хм ой ах ох алло",
            breaks: "а але проте однак зате хоча",
            negators: "не ніколи ані",
            particles: "ні ніт нє немає нема",
            intensifiers: "дуже особливо зовсім надто занадто взагалі абсолютно цілком прям прямо \
                           більше знову точно однозначно",
            generic: "так ага угу ок окей добре гаразд дякую дякуємо звичайно авжеж",
            modals: &[
                (
                    "хотіти",
                    "хочу хочеш хоче хочемо хочете хочуть хотів хотіла хотіли хотілося хочеться",
                ),
                (
                    "треба",
                    "треба потрібно потрібен потрібна потрібні необхідно",
                ),
                (
                    "могти",
                    "можу можеш може можемо можете можуть міг могла могли",
                ),
            ],
            digits: &[
                ('0', "нуль ноль нульовий"),
                (
                    '1',
                    "один одна одне одну одиниця одиницю одиничка одиничку перший перша перше \
                     першу першого",
                ),
                (
                    '2',
                    "два дві двійка двійку другий друга друге другу другого",
                ),
                ('3', "три трійка трійку третій третя третє третю третього"),
                (
                    '4',
                    "чотири четвірка четвірку четвертий четверта четверте четверту",
                ),
                ('5', "пять пятірка пятірку пятий пята пяте пяту"),
                ('6', "шість шістка шістку шостий шоста шосте шосту"),
                ('7', "сім сімка сімку сьомий сьома сьоме сьому"),
                ('8', "вісім вісімка вісімку восьмий восьма восьме восьму"),
                ('9', "девять девятка девятку девятий девята девяте девяту"),
                ('*', "зірочка зірочку зірка"),
                ('#', "решітка решітку"),
            ],
            key_context: &[
                "натис",
                "тисн",
                "вибира",
                "вибер",
                "вибір",
                "варіант",
                "цифр",
                "кнопк",
                "клавіш",
                "пункт",
                "номер",
            ],
            time_units: &[
                "секунд",
                "сек",
                "хвилин",
                "момент",
                "годин",
                "ден",
                "дн",
                "тиж",
                "місяц",
                "рік",
                "рок",
                "раз",
            ],
            entities: &[
                (
                    Entity::Time,
                    &[
                        "завтра",
                        "післязавтра",
                        "вечор",
                        "вечер",
                        "зранку",
                        "понеділ",
                        "вівтор",
                        "четвер",
                        "пятниц",
                        "субот",
                        "неділ",
                        "вихідн",
                        "тиждень",
                        "тижн",
                        "місяц",
                        "півроку",
                        "квартал",
                        "осен",
                        "восени",
                        "весн",
                        "навесні",
                        "влітку",
                        "зим",
                        "взимку",
                        "свят",
                        "січ",
                        "лют",
                        "берез",
                        "квіт",
                        "травн",
                        "черв",
                        "лип",
                        "серп",
                        "вересн",
                        "жовт",
                        "листопад",
                        "груд",
                        "наступн",
                        "пізніше",
                        "потім",
                        "згодом",
                        "незабаром",
                    ],
                    "рік року роки середу середа літо літом",
                ),
                (
                    Entity::Negative,
                    &[
                        "поган",
                        "жахлив",
                        "жах",
                        "огидн",
                        "кошмар",
                        "неподобств",
                        "хамств",
                        "груб",
                        "обман",
                        "ошука",
                        "розчаров",
                        "незадовол",
                        "підвел",
                        "запізню",
                        "зламал",
                        "неякісн",
                        "марн",
                    ],
                    "дорого дорогі дорога дорогий",
                ),
            ],
        },
        Lang::En => Lists {
            stop: "a an the i me my mine myself you your yours we us our ours he him his she her \
                   it its they them their this that these those is am are was were be been being \
                   do does did doing have has had having will would shall should can could may \
                   might must to of in on at by for with from about into as and or if then than \
                   so just please um umm uh uhm er erm hmm hm mm mmm ah oh well hey hi sir \
                   maam actually there here what who how which where any some all anything \
                   something let guys hello after before",
            breaks: "but however though although",
            negators: "not never neither nor",
            particles: "no nope nah naw",
            intensifiers: "really very too quite particularly especially right exactly ever even \
                           totally completely more anymore again absolutely definitely \
                           certainly surely",
            generic: "yes yeah yep yup sure ok okay thanks thank alright",
            modals: &[
                ("want", "want wants wanted wanna"),
                ("need", "need needs needed"),
            ],
            digits: &[
                ('0', "zero nought"),
                ('1', "one first"),
                ('2', "two second"),
                ('3', "three third"),
                ('4', "four fourth"),
                ('5', "five fifth"),
                ('6', "six sixth"),
                ('7', "seven seventh"),
                ('8', "eight eighth"),
                ('9', "nine ninth"),
                ('*', "star asterisk"),
                ('#', "pound hash"),
            ],
            key_context: &[
                "press", "push", "option", "number", "key", "button", "digit", "choose", "choice",
                "pick", "select", "hit", "dial",
            ],
            time_units: &[
                "second", "sec", "minute", "min", "moment", "hour", "day", "week", "month", "year",
                "time", "more",
            ],
            entities: &[
                (
                    Entity::Time,
                    &[
                        "tomorrow",
                        "tonight",
                        "evening",
                        "morning",
                        "afternoon",
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                        "weekend",
                        "week",
                        "month",
                        "year",
                        "quarter",
                        "spring",
                        "summer",
                        "autumn",
                        "winter",
                        "holiday",
                        "january",
                        "february",
                        "march",
                        "april",
                        "june",
                        "july",
                        "august",
                        "september",
                        "october",
                        "november",
                        "december",
                        "later",
                        "next",
                        "soon",
                    ],
                    "fall may",
                ),
                (
                    Entity::Negative,
                    &[
                        "terribl",
                        "awful",
                        "horribl",
                        "rude",
                        "worst",
                        "disappoint",
                        "unhappy",
                        "overpric",
                        "overcharg",
                        "expensive",
                        "broke",
                        "scam",
                        "ripped",
                        "useless",
                        "complain",
                        "annoy",
                        "frustrat",
                        "unprofessional",
                    ],
                    "bad poor late wrong slow",
                ),
            ],
        },
    }
}

/// English words after which "one"/"second" are not numbers ("no one", "this one",
/// "a second", "the right one").
pub(crate) fn en_not_number_after(prev: &str, word: &str) -> bool {
    match word {
        "one" => matches!(
            prev,
            "no" | "any"
                | "some"
                | "every"
                | "each"
                | "which"
                | "this"
                | "that"
                | "another"
                | "other"
                | "last"
                | "next"
                | "right"
                | "wrong"
                | "only"
                | "same"
                | "first"
                | "second"
                | "third"
                | "fourth"
                | "fifth"
                | "ninth"
                | "good"
                | "new"
                | "old"
                | "someone"
                | "anyone"
        ),
        "second" => matches!(prev, "a" | "one" | "just" | "per" | "few" | "couple"),
        _ => false,
    }
}

/// English contractions whose apostrophe ASR dropped, expanded like their spelled forms.
pub(crate) fn en_contraction(word: &str) -> Option<&'static [&'static str]> {
    Some(match word {
        "dont" => &["do", "not"],
        "doesnt" => &["does", "not"],
        "didnt" => &["did", "not"],
        "cant" | "cannot" => &["can", "not"],
        "wont" => &["will", "not"],
        "isnt" => &["is", "not"],
        "arent" => &["are", "not"],
        "wasnt" => &["was", "not"],
        "werent" => &["were", "not"],
        "havent" => &["have", "not"],
        "hasnt" => &["has", "not"],
        "hadnt" => &["had", "not"],
        "wouldnt" => &["would", "not"],
        "shouldnt" => &["should", "not"],
        "couldnt" => &["could", "not"],
        "aint" => &["am", "not"],
        "im" => &["i", "am"],
        "ive" => &["i", "have"],
        "youre" => &["you", "are"],
        "theyre" => &["they", "are"],
        "thats" => &["that", "is"],
        "whats" => &["what", "is"],
        "gonna" => &["going", "to"],
        _ => return None,
    })
}
