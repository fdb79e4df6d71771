"""Passwords too common to allow, lower-case: the most used passwords of the public leak
collections, keyboard walks, number runs and the favourites of Chinese users (woaini1314,
5201314...). Shorter ones are listed too, although the length rule already refuses them, so
that the list stays right if the minimum length is ever lowered."""

_LISTED = """
123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon 123123 baseball
abc123 football monkey letmein 696969 shadow master 666666 qwertyuiop 123321 mustang
1234567890 michael 654321 superman 1qaz2wsx 7777777 121212 000000 qazwsx 123qwe killer
trustno1 jordan jennifer zxcvbnm asdfgh hunter buster soccer harley batman andrew tigger
sunshine iloveyou 2000 charlie robert thomas hockey ranger daniel starwars klaster 112233
george computer michelle jessica pepper 1111 zxcvbn 555555 11111111 131313 freedom 777777
pass maggie 159753 aaaaaa ginger princess joshua cheese amanda summer love ashley nicole
chelsea biteme matthew access yankees 987654321 dallas austin thunder taylor matrix
william corvette hello martin heather secret merlin diamond 1234qwer gfhjkm hammer silver
222222 88888888 anthony justin test bailey q1w2e3r4t5 patrick internet scooter orange
11111 golfer cookie richard samantha bigdog guitar jackson whatever mickey chicken
sparky snoopy maverick phoenix camaro peanut morgan welcome falcon cowboy ferrari samsung
andrea smokey steelers joseph mercedes dakota arsenal eagles melissa boomer booboo spider
nascar monster tigers yellow xxxxxx 123123123 gateway marina diablo bulldog qwer1234
compaq purple hardcore banana junior hannah 123654 porsche lakers iceman money cowboys
987654 london tennis 999999 ncc1701 coffee scooby 0000 miller boston q1w2e3r4 brandon
yamaha chester mother forever johnny edward 333333 oliver redsox player nikita knight
fender barney midnight please brandy chicago badboy slayer rangers charles angel flower
bigdaddy rabbit wizard jasper enter rachel chris 123abc alexander victoria 11223344
admin admin123 root toor guest user test123 qwerty123 password1 password12 password123
password1234 password12345 password123456 passw0rd p@ssw0rd p@ssword passwort motdepasse
1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y 1q2w3e4r5t6y7u 1q2w3e4r5t6y7u8i 1q2w3e4r5t6y7u8i9o0p
q1w2e3r4t5y6 q1w2e3r4t5y6u7 1qaz2wsx3edc 1qaz2wsx3edc4rfv 1qazxsw23edc zaq12wsx
zaq12wsxcde3 zaq1xsw2cde3 zaq1zaq1zaq1 qazwsxedc qazwsxedcrfv qazwsxedc123 qazwsx123456
qwertyuiop[] qwertyuiop123 qwertyuiop1 asdfghjkl asdfghjkl; asdfghjkl123 asdfghjkl1
zxcvbnm123 zxcvbnm1234 zxcvbnm,./ zxcvbnm12345 qwerasdfzxcv qweasdzxc qweasdzxc123
qweasdzxc1 qweasd123 123qweasd 123qweasdzxc 1234qwerasdf qwertyqwerty asdfasdfasdf
qwerty1234 qwerty12345 qwerty123456 qwerty1234567 qwerty7890 1234567890q 1234567890a
qwertzuiop azertyuiop azerty123456 !qaz2wsx !qaz2wsx3edc 1qaz@wsx3edc !qaz@wsx#edc
1qaz!qaz 1qaz2wsx3e 1qaz2wsx! 1q2w3e4r! 1q2w3e4r5t! 1!2@3#4$5% !@#$%^&*() !@#$%^&*
1234567890-= 0987654321 9876543210 0123456789 01234567890 12345678910 123456789012
1234567891 1234567899 12345678900 123456789a 123456789q 123456789z 123456789abc
123456789qwe 123456789! a123456789 a1234567890 q123456789 w123456789 z123456789
aa123456789 qq123456789 qaz123456789 asd123456789 abc123456789 a12345678910
abc1234567 abcd123456 abcde12345 12345abcde abcdef1234 1234abcdef abcdefghij abcdefg123
asdf123456 123456asdf qwer123456 123456qwer zxcv123456 123456zxcv abc123abc123
qwe123qwe123 asd123asd123 a1b2c3d4e5 a1b2c3d4e5f6 a1s2d3f4g5 1a2b3c4d5e 1a2b3c4d5e6f
aaaaaa111111 aaa111aaa111 147258369 1472583690 147258369a 147258369q 9638527410
3692581470 7894561230 1593572580 159753456852 1357924680 1029384756 1122334455
112233445566 1212121212 1231231231 123123123123 123456123456 1234512345 1234554321
12344321 123454321 1111122222 6969696969 5555555555 1111111111 0000000000 2222222222
3333333333 4444444444 6666666666 7777777777 8888888888 9999999999 11111111111
111111111111 00000000000 000000000000 88888888888 666666666666 5201314 520520 1314520
5201314520 1314520520 5211314521 1314521521 7758521521 52013145201314 5201314a
a5201314 woaini woaini1314 woaini520 woaini521 woaini5201314 woaini123 woaini1234
woaini123456 woainima woaiwojia iloveyou1314 iloveyou520 5201314woaini aini1314
aini1314521 loveyou1314 woshishui wodemima zhang123456 wang123456 li123456 liu123456
chen123456 zhangwei123 wangwei123 baobei520 baobei1314 qq123456 qq1234567 qq5201314
admin12345 admin123456 admin1234567 admin@123 admin@1234 admin@12345 admin@123456
administrator administrator1 root123456 root@123 root12345 system123 system1234
sysadmin123 superuser123 manager123 test123456 test1234567 testtest12 testing123
testtest123 guest12345 guest123456 user123456 user12345678 demo123456 default123
default1234 changeme changeme123 changeme1234 letmein123 letmein1234 welcome123
welcome1234 welcome12345 welcome2020 welcome2021 welcome2022 welcome2023 welcome2024
welcome2025 welcome2026 welcome2027 secret1234 secret12345 mypassword mypassword1
mypassword123 yourpassword newpassword newpassword1 newpassword123 oldpassword
passpass12 passwordpassword password01 password00 password11 password99 password!
password1! password123! password2020 password2021 password2022 password2023
password2024 password2025 password2026 password2027 1password1 p@ssw0rd123 p@ssw0rd1234
passw0rd123 passw0rd1234 p@$$w0rd123 pa$$word123 passwort123 contrasena contrasena123
senha123456 parola1234 haslo12345 iloveyou1 iloveyou12 iloveyou123 iloveyou1234
iloveyou!! ihateyou12 loveme1234 lovelove12 superman123 batman1234 batman12345
princess12 princess123 sunshine12 sunshine123 football12 football123 football1!
baseball12 baseball123 basketball basketball1 basketball12 soccer12345 hockey12345
monkey12345 dragon12345 master12345 master123456 michael123 jennifer123 jessica123
michelle12 charlie123 nicole1234 trustno1234 trustno1!! starwars12 starwars123
whatever123 computer12 computer123 internet123 pokemon123 minecraft1 minecraft123
liverpool1 liverpool123 manchester chelsea1234 arsenal123 elephant12 chocolate1
chocolate123 strawberry butterfly1 sunflower1 blink18222 spiderman1 spiderman123
qwerty123! 12345qwert 12345qwerty 1234qwer! 1234abcd! summer2020 summer2021 summer2022
summer2023 summer2024 summer2025 summer2026 spring2024 spring2025 spring2026 autumn2024
autumn2025 autumn2026 winter2024 winter2025 winter2026 january2026 december2025
1234567890! 0987654321! aaaaaaaaaa aaaaaaaaaaaa abcabcabcabc abababababab
gridwork123 gridwork1234 gridwork2026 gridworkadmin gridwork@123
"""

COMMON_PASSWORDS: frozenset[str] = frozenset(_LISTED.split())
